"""The model pieces beside the posts' layers: convolution gradients, loss scaling, the pix2pix
stage's model."""
