"""foundation: pre-training materials foundation models on DFT energies, forces and stresses."""

__version__ = "0.1.0"
