"""Images in: the dataset cache and batches, face detection and alignment's pieces."""
