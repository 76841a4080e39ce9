"""Scaling-law fits, the compute-optimal frontier and the sweep report."""
