"""Fixtures for the eval tests: a synthetic eval run directory (unit files only, no model) and headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from evals.config import SuiteConfig
from evals.suite import CHECKPOINT_FILE, SUITE_FILE, plan_units
from foundation.config import load_config, save_config
from foundation.data.atomic import write_text_atomic
from tests.conftest import require

CHROMIUM = "/usr/bin/chromium"
SYNTHETIC_SUITE = {
    "name": "synthetic",
    "seeds": [0, 1],
    "tasks": [{"name": "bulk", "kind": "dcdft_finetune", "num_folds": 2},
              {"name": "eos", "kind": "dcdft_eos"},
              {"name": "frames", "kind": "zeroshot"}],
}


def _finetune_unit(unit, rng) -> dict:
    y = rng.uniform(1, 200, size=12)
    noise = 5.0 if unit.variant == "pretrained" else 20.0
    p = y + rng.normal(0, noise, size=y.size)
    from evals.metrics import regression_metrics
    curve = [{"epoch": e, "train_loss": 1.0 / e, "val_mae": noise * (1 + 3.0 / e), "lr": 1e-3} for e in range(1, 9)]
    return {"kind": "finetune", "metrics": regression_metrics(y, p),
            "predictions": {"ids": [f"s{i}" for i in range(y.size)], "y_true": y.tolist(), "y_pred": p.tolist()},
            "curve": curve, "best_epoch": 8,
            "task": {"name": unit.task, "property": "bulk_modulus", "unit": "GPa", "num_structures": 24,
                     "num_folds": 2, "sources": {"ase.collections.dcdft": "ase"}}}


def _eos_unit(rng) -> dict:
    rows = [{"id": s, "y_true": b, "y_pred": b * rng.uniform(0.8, 1.2), "v0_ref": 12.0, "v0_pred": 12.5}
            for s, b in (("Cu", 141.3), ("Al", 78.0), ("Si", 88.5))]
    from evals.metrics import regression_metrics
    metrics = regression_metrics([r["y_true"] for r in rows], [r["y_pred"] for r in rows])
    return {"kind": "eos", "predictions": rows, "metrics": metrics, "unit": "GPa",
            "failures": [{"id": "He", "reason": "no_minimum", "message": "E(V) has no minimum"}],
            "task": {"name": "eos", "property": "bulk_modulus", "unit": "GPa", "num_structures": 4, "sources": {}}}


def _zeroshot_unit(rng) -> dict:
    errors = {"energy_per_atom": rng.normal(0, 0.02, 40).tolist(), "forces": rng.normal(0, 0.1, 600).tolist(),
              "stress": rng.normal(0, 0.003, 360).tolist()}
    metrics = {k: {"mae": float(np.mean(np.abs(v))), "rmse": float(np.sqrt(np.mean(np.square(v)))), "n": len(v)}
               for k, v in errors.items()}
    return {"kind": "zeroshot", "n_frames": 40, "metrics": metrics, "errors": errors,
            "per_element": {"Cu": {"frames": 30, "energy_per_atom_mae": 0.01, "atoms": 150, "forces_mae": 0.08},
                            "O": {"frames": 10, "energy_per_atom_mae": 0.03, "atoms": 50, "forces_mae": 0.12}},
            "task": {"name": "frames", "property": "energy/forces/stress", "unit": "", "path": "/data/x",
                     "split": "test", "manifest_sha256": "ab" * 32}}


def make_synthetic_run(out: Path, skip: int = 0) -> Path:
    """An eval run directory whose unit files hold made-up numbers (leave the last `skip` units missing)."""
    out.mkdir(parents=True, exist_ok=True)
    save_config(load_config(SuiteConfig, SYNTHETIC_SUITE), out / SUITE_FILE)
    write_text_atomic(out / CHECKPOINT_FILE, json.dumps({
        "path": "/runs/tiny", "kind": "run", "which": "best", "sha256": "cd" * 32, "command": "foundation eval ...",
        "pretraining_manifest": {"path": "/data/x", "sha256": "ef" * 32}}))
    rng = np.random.default_rng(0)
    units = plan_units(out)
    for unit in units[:len(units) - skip]:
        if unit.task == "bulk":
            body = _finetune_unit(unit, rng)
        elif unit.task == "eos":
            body = _eos_unit(rng)
        else:
            body = _zeroshot_unit(rng)
        body.update({"unit": {}, "key": unit.key, "variant": unit.variant, "fold": unit.fold, "seed": unit.seed})
        write_text_atomic(unit.result_path, json.dumps(body))
    return out


@pytest.fixture
def synthetic_run(tmp_path: Path) -> Path:
    return make_synthetic_run(tmp_path / "eval")


MARK_SCRIPT = """<script>window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-figures', ok + '/' + imgs.length);
});</script>"""


def figures_loaded_in_chromium(html_path: Path, tmp_path: Path) -> tuple[int, int]:
    """(figures that loaded, figures on the page) of an HTML file rendered by headless Chromium."""
    require(Path(CHROMIUM).exists() or shutil.which("chromium") is not None,
            "needs Debian's chromium (run `bash scripts/system-deps.sh` as root)")
    page = tmp_path / "checked.html"
    page.write_text(html_path.read_text().replace("</body>", MARK_SCRIPT + "</body>"))
    with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
        cmd = [CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"), "--headless", "--no-sandbox",
               "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    match = re.search(r'data-figures="(\d+)/(\d+)"', dom)
    assert match, f"chromium did not run the page's script; DOM starts {dom[:300]!r}"
    return int(match.group(1)), int(match.group(2))
