"""Watching a run: TensorBoard scalars (run_dir/tb), one JSON line per event (run_dir/metrics.jsonl), a line
log (run_dir/train.log) and a tqdm bar with step, loss and atoms/s. Only rank 0 writes."""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from pathlib import Path

import torch

from foundation.files import write_text_atomic
from foundation.progress import progress_bar
from foundation.train.run_layout import RunLayout

log = logging.getLogger(__name__)


def memory_mb(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process and, on GPU, peak allocated device memory (MiB)."""
    out = {"memory/host_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if device.type == "cuda":
        out["memory/device_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume: keep the complete events up to the checkpoint's step (a killed run may have logged later
    steps, or half a line), so metrics.jsonl reads as one uninterrupted run."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("step", 0) <= step:
            kept.append(line)
    write_text_atomic(path, "".join(f"{line}\n" for line in kept))


class RunLogger:
    def __init__(
        self, run_dir: Path, *, enabled: bool, progress: bool, total_steps: int, initial_step: int
    ):
        self.enabled = enabled
        self.bar = None
        self.tb = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        layout = RunLayout(run_dir)
        self.tb = SummaryWriter(
            str(layout.tensorboard), purge_step=initial_step + 1 if initial_step else None
        )
        _truncate_metrics(layout.metrics_log, initial_step)
        self.metrics = open(layout.metrics_log, "a", buffering=1)
        self.lines = open(layout.text_log, "a", buffering=1)
        if progress:
            self.bar = progress_bar(
                total=total_steps,
                initial=initial_step,
                desc="train",
                unit="step",
                dynamic_ncols=True,
            )

    def line(self, text: str, level: int = logging.INFO) -> None:
        """A time-stamped line of train.log, and a log record (shown by the command line)."""
        if not self.enabled:
            return
        prefix = "" if level == logging.INFO else f"{logging.getLevelName(level)}: "
        self.lines.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {prefix}{text}\n")
        log.log(level, text)

    def event(self, kind: str, step: int, values: dict[str, float]) -> None:
        """One logging event ("train" or "val"): TensorBoard scalars, a metrics.jsonl line and a log line."""
        if not self.enabled:
            return
        for key, value in values.items():
            if value is not None and math.isfinite(value):
                self.tb.add_scalar(f"{kind}/{key}" if "/" not in key else key, value, step)
        clean = {k: (v if v is None or math.isfinite(v) else None) for k, v in values.items()}
        self.metrics.write(
            json.dumps({"kind": kind, "step": step, "time": time.time(), **clean}) + "\n"
        )
        self.line(
            f"{kind} step {step}: "
            + " ".join(f"{k}={v:.5g}" for k, v in values.items() if v is not None)
        )

    def advance(
        self, steps: int, loss: float | None = None, atoms_per_s: float | None = None
    ) -> None:
        if self.bar is None:
            return
        self.bar.update(steps)
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.4g}", atoms_s=f"{atoms_per_s:.0f}", refresh=False)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        self.tb.flush()
        self.tb.close()
        self.metrics.close()
        self.lines.close()
