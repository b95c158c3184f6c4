"""Joint multi-dataset training: recipe, loss weighting, box targets, checkpoints and the engine."""
