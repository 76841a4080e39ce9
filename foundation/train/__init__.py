"""Pre-training with DeepSpeed: objectives, atoms-balanced loaders, engine, loop, checkpoints, exact resume."""
