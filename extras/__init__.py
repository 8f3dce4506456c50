"""What is ours and not a post's: the run machinery, the data pipeline, the trainers' flags, the
device choice, plots, quality figures, how TensorFlow is loaded, file helpers and the pix2pix
model."""
