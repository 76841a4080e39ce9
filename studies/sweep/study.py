"""A sweep as a whole: prepare it (nested subsets, resolved config, points) and gather its results for the
report (foundation.studies.scaling.report renders them)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Sequence

from foundation.config import save_config
from foundation.studies.sweep.config import SweepConfig
from foundation.studies.sweep.grid import SweepPoint, expand_grid
from foundation.studies.sweep.runner import collect
from foundation.studies.sweep.subsets import write_nested_subsets


def prepare_sweep(config: SweepConfig, *, progress: bool = True) -> list[SweepPoint]:
    """Write the nested data subsets (reused when already there), save the resolved sweep config as
    out_dir/sweep.yaml, and return every point of the grid."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "sweep.yaml")
    write_nested_subsets(config.data.source, out / "data", config.data.frames, seed=config.data.seed,
                         progress=progress)
    return expand_grid(config)


def sweep_results(config: SweepConfig, points: Sequence[SweepPoint], command: str) -> dict[str, Any]:
    """Everything the report needs: the sweep's description and each point's result, failure or absence."""
    return {
        "sweep": {"name": config.name, "base_config": config.base_config, "data_source": config.data.source,
                  "data_seed": config.data.seed, "loss_formula": config.loss_formula, "command": command,
                  "out_dir": config.out_dir},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "confidence": config.fit.confidence,
        "metric_names": list(config.loss),
        **collect(points),
    }
