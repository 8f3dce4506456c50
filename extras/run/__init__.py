"""The run machinery: the training loop's run, checkpoints, config and flags, plots and quality
figures."""
