"""Reading datasets in their real on-disk formats: decoded samples, the augmentation, mixed batches."""
