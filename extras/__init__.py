"""What is ours and not a post's, by role: `model` (pieces of the models beside the posts' layer
ops, and the pix2pix stage's model), `data` (the dataset cache and batches, face detection),
`run` (the run machinery: the training loop's run, checkpoints, the config and flags, plots,
quality figures), `machine` (how TensorFlow loads, the device, the CPU, the Session), and file
helpers (`utils`)."""
