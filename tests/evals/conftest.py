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
from foundation.evals.config import SuiteConfig
from foundation.evals.suite import CHECKPOINT_FILE, SUITE_FILE, plan_units

from foundation.config import load_config, save_config
from foundation.files import write_text_atomic
from tests.conftest import FIXTURES, require

CHROMIUM = "/usr/bin/chromium"
SYNTHETIC_SUITE = {
    "name": "synthetic",
    "seeds": [0, 1],
    "tasks": [
        {"name": "bulk", "kind": "dcdft_finetune", "num_folds": 2},
        {"name": "eos", "kind": "dcdft_eos"},
        {"name": "frames", "kind": "zeroshot"},
    ],
}


def _finetune_unit(unit, rng) -> dict:
    y = rng.uniform(1, 200, size=12)
    noise = (5.0 if unit.variant in ("pretrained", "probe_pretrained") else 20.0) * (
        1 + 30.0 / (unit.size or 60)
    )
    p = y + rng.normal(0, noise, size=y.size)
    from foundation.evals.metrics import property_baselines, regression_metrics

    curve = [
        {"epoch": e, "train_loss": 1.0 / e, "val_mae": noise * (1 + 3.0 / e), "lr": 1e-3}
        for e in range(1, 9)
    ]
    n = unit.size or 48
    train = rng.uniform(1, 200, size=n)
    return {
        "kind": "finetune",
        "metrics": regression_metrics(y, p),
        "baselines": property_baselines(train, y),
        "n_train": n - n // 10,
        "n_val": n // 10,
        "n_test": y.size,
        "size": unit.size,
        "predictions": {
            "ids": [f"s{i}" for i in range(y.size)],
            "y_true": y.tolist(),
            "y_pred": p.tolist(),
        },
        "curve": curve,
        "best_epoch": 8,
        "task": {
            "name": unit.task,
            "property": "bulk_modulus",
            "unit": "GPa",
            "num_structures": 24,
            "num_folds": 2,
            "provenance": {"ase.collections.dcdft": "ase"},
        },
    }


def _eos_unit(rng) -> dict:
    rows = [
        {"id": s, "y_true": b, "y_pred": b * rng.uniform(0.8, 1.2), "v0_ref": 12.0, "v0_pred": 12.5}
        for s, b in (("Cu", 141.3), ("Al", 78.0), ("Si", 88.5))
    ]
    from foundation.evals.metrics import regression_metrics

    metrics = regression_metrics([r["y_true"] for r in rows], [r["y_pred"] for r in rows])
    return {
        "kind": "eos",
        "predictions": rows,
        "metrics": metrics,
        "unit": "GPa",
        "failures": [{"id": "He", "reason": "no_minimum", "message": "E(V) has no minimum"}],
        "task": {
            "name": "eos",
            "property": "bulk_modulus",
            "unit": "GPa",
            "num_structures": 4,
            "provenance": {},
        },
    }


def _zeroshot_unit(rng) -> dict:
    errors = {
        "energy_per_atom": rng.normal(0, 0.02, 40).tolist(),
        "forces": rng.normal(0, 0.1, 600).tolist(),
        "stress": rng.normal(0, 0.003, 360).tolist(),
    }
    metrics = {
        k: {
            "mae": float(np.mean(np.abs(v))),
            "rmse": float(np.sqrt(np.mean(np.square(v)))),
            "n": len(v),
        }
        for k, v in errors.items()
    }
    return {
        "kind": "zeroshot",
        "n_frames": 40,
        "metrics": metrics,
        "errors": errors,
        "per_element": {
            "Cu": {"frames": 30, "energy_per_atom_mae": 0.01, "atoms": 150, "forces_mae": 0.08},
            "O": {"frames": 10, "energy_per_atom_mae": 0.03, "atoms": 50, "forces_mae": 0.12},
        },
        "per_source": {
            "MPtrj": {
                "frames": 40,
                "energy_per_atom_mae": 0.02,
                "energy_per_atom_baseline_mae": 0.5,
                "forces_mae": 0.1,
                "forces_baseline_mae": 0.4,
            }
        },
        "task": {
            "name": "frames",
            "property": "energy/forces/stress",
            "unit": "",
            "path": "/data/x",
            "split": "test",
            "manifest_sha256": "ab" * 32,
        },
    }


def make_synthetic_run(out: Path, skip: int = 0, suite: dict | None = None) -> Path:
    """An eval run directory whose unit files hold made-up numbers (leave the last `skip` units missing)."""
    out.mkdir(parents=True, exist_ok=True)
    save_config(load_config(SuiteConfig, suite or SYNTHETIC_SUITE), out / SUITE_FILE)
    write_text_atomic(
        out / CHECKPOINT_FILE,
        json.dumps(
            {
                "path": "/runs/tiny",
                "kind": "run",
                "which": "best",
                "sha256": "cd" * 32,
                "command": "foundation eval ...",
                "pretraining_manifest": {"path": "/data/x", "sha256": "ef" * 32},
            }
        ),
    )
    rng = np.random.default_rng(0)
    units = plan_units(out)
    for unit in units[: len(units) - skip]:
        if unit.task == "bulk":
            body = _finetune_unit(unit, rng)
        elif unit.task == "eos":
            body = _eos_unit(rng)
        else:
            body = _zeroshot_unit(rng)
        body.update(
            {
                "unit": {},
                "key": unit.key,
                "variant": unit.variant,
                "fold": unit.fold,
                "seed": unit.seed,
                "size": unit.size,
            }
        )
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
    require(
        Path(CHROMIUM).exists() or shutil.which("chromium") is not None,
        "needs Debian's chromium (run `bash scripts/system-deps.sh` as root)",
    )
    page = tmp_path / "checked.html"
    page.write_text(html_path.read_text().replace("</body>", MARK_SCRIPT + "</body>"))
    with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
        cmd = [
            CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ]
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    match = re.search(r'data-figures="(\d+)/(\d+)"', dom)
    assert match, f"chromium did not run the page's script; DOM starts {dom[:300]!r}"
    return int(match.group(1)), int(match.group(2))


# ---- a tiny run directory in the training run layout (an untrained potential with fitted element references) ----

TINY_MODEL = {
    "backbone": {"name": "schnet", "hidden": 16, "layers": 2, "cutoff": 4.0, "num_radial": 16},
    "heads": {"energy": True, "forces": "derivative", "stress": "derivative"},
}


def write_tiny_dataset(out: Path, frames_per_split=(40, 10, 16)) -> Path:
    """Real MPtrj frames (E/F/S, tests/fixtures) as a prepared dataset with train/val/test splits and element
    references."""
    from ase.io import read

    from foundation.data.ase_convert import frame_from_atoms
    from foundation.data.writer import write_dataset

    total = sum(frames_per_split)
    atoms = read(FIXTURES / "dft" / "mptrj-sample.xyz", index=f":{total}")
    frames = [
        frame_from_atoms(
            a,
            frame_id=a.info["mptrj_snapshot_id"],
            structure_id=a.info["mptrj_traj_id"],
            source="mptrj",
        )
        for a in atoms
    ]
    elements = sorted({int(z) for f in frames for z in f.numbers})
    counts = np.array([[np.sum(f.numbers == z) for z in elements] for f in frames], dtype=float)
    refs, *_ = np.linalg.lstsq(counts, np.array([f.energy for f in frames]), rcond=None)
    from ase.data import chemical_symbols

    n_train, n_val, _ = frames_per_split
    write_dataset(
        out,
        {
            "train": frames[:n_train],
            "val": frames[n_train : n_train + n_val],
            "test": frames[n_train + n_val :],
        },
        element_references={chemical_symbols[z]: float(r) for z, r in zip(elements, refs)},
    )
    return out


def write_tiny_run(run_dir: Path, dataset: Path) -> Path:
    """A run directory (config.yaml, best/ and last/ exports) holding an untrained tiny SchNet."""
    import torch
    import yaml

    from foundation import build_potential
    from foundation.config import to_dict
    from foundation.data.manifest import Manifest
    from foundation.train.checkpoint import export_model

    torch.manual_seed(0)
    potential = build_potential(TINY_MODEL)
    normalization = {
        "element_references": Manifest.load(dataset).element_references,
        "scale": 0.1,
        "shift": 0.0,
    }
    potential.set_normalization(**normalization)
    meta = {
        "format": "foundation-potential",
        "model": to_dict(potential.config),
        "normalization": normalization,
        "step": 0,
        "val": {"loss": 1.0},
        "objective": {"name": "efs"},
        "dataset": str(dataset),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    for which in ("best", "last"):
        export_model(run_dir / which, potential.state_dict(), meta)
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "run_dir": str(run_dir),
                "data": {"path": str(dataset)},
                "model": meta["model"],
                "objective": meta["objective"],
            }
        )
    )
    return run_dir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    return write_tiny_run(root / "run", write_tiny_dataset(root / "data"))
