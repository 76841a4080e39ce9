"""Studies: many training runs, then a report (scaling-law sweeps, the objective ablation)."""
