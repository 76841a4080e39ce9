"""Scaling-law fits by study design (data scaling, iso-FLOP profiles), predictions beyond the grid, and the sweep
report."""
