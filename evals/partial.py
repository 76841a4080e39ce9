"""Whether what a release bundles is finished: a training run that stopped before its planned steps (not by its
early-stopping rule), or an eval report with units missing. `foundation release` refuses such a run unless
`--allow-partial`, and then marks it in release.json (`incomplete`) and on the model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from foundation.errors import UserError
from foundation.train.checkpoint import latest_checkpoint
from foundation.train.run_layout import CHECKPOINT_STATE, LAST, MODEL_META


class PartialRelease(UserError):
    """A release of an unfinished run or eval, refused without --allow-partial."""


def training_shortfall(run_dir: Path, config: dict[str, Any]) -> str | None:
    """Why the run did not finish (the step its last/ export reached against train.max_steps); None when it
    reached its planned steps, stopped by early stopping, or says neither (no train.max_steps, no last/)."""
    train = config.get("train") or {}
    planned, meta = train.get("max_steps"), run_dir / LAST / MODEL_META
    if planned is None or not meta.is_file():
        return None
    reached = json.loads(meta.read_text()).get("step")
    if reached is None or reached >= planned or _early_stopped(run_dir, train):
        return None
    return f"training stopped at step {reached} of the {planned} planned (train.max_steps)"


def _early_stopped(run_dir: Path, train: dict[str, Any]) -> bool:
    """The early-stopping rule of the loop, on the newest checkpoint's state."""
    patience = train.get("early_stop_patience") or 0
    latest = latest_checkpoint(run_dir)
    if not patience or latest is None:
        return False
    state = json.loads((latest / CHECKPOINT_STATE).read_text())
    best = state.get("best_step")
    return best is not None and (state["step"] - best) // train.get("val_every", 100) >= patience


def eval_shortfall(results: dict[str, Any]) -> str | None:
    """Why an eval's results.json is incomplete (units without a result); None when every unit finished."""
    missing = results.get("missing_units") or []
    if not missing:
        return None
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return f"the eval report misses {len(missing)} units ({shown})"


def check_partial(where: Path, shortfalls: list[str | None], allow: bool) -> list[str]:
    """The shortfalls that apply; PartialRelease naming `where` when there are some and `allow` is false."""
    found = [s for s in shortfalls if s]
    if found and not allow:
        raise PartialRelease(
            f"{where}: {'; '.join(found)}: refused; finish it (rerun the same command to resume), or pass "
            "--allow-partial to release it marked incomplete"
        )
    return found
