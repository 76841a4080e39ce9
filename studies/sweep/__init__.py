"""Scaling-law sweeps: grids of pre-training runs over model size, data size and budget."""
