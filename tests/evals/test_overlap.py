"""The eval report states, per task, how many test structures share a composition with a pre-training frame."""

from __future__ import annotations

import json

import numpy as np
from ase.build import bulk
from ase.io import write
from foundation.data_prep.pipeline import run_prep
from foundation.data_prep.split import split_group
from foundation.evals.overlap import pretraining_overlap
from foundation.evals.reduce import reduce_units
from foundation.evals.suite import CHECKPOINT_FILE
from foundation.evals.tasks.dcdft import dcdft_entries

from foundation.data.dataset import open_dataset
from tests.data_prep.helpers import prep_config
from tests.evals.conftest import make_synthetic_run

CRYSTALS = ["Cu", "Al", "Ni", "Ag", "Au", "Pd", "Pt", "Pb", "Ca", "Sr", "Rh", "Ir"]


def _pretraining_data(tmp_path):
    """A prepared dataset of rattled elemental crystals (some of them dcdft's), split by composition."""
    rng = np.random.default_rng(0)
    frames = []
    for symbol in CRYSTALS:
        for k in range(4):
            atoms = bulk(symbol, "fcc", a=4.0, cubic=True)
            atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
            atoms.info.update(energy=-3.0 * len(atoms), frame_id=f"{symbol}-{k}")
            atoms.arrays["forces"] = rng.normal(scale=0.1, size=atoms.positions.shape)
            frames.append(atoms)
    write(tmp_path / "crystals.xyz", frames, format="extxyz")
    out = tmp_path / "data"
    run_prep(prep_config([tmp_path / "crystals.xyz"], out, split={"train": 0.5, "test": 0.5}))
    return out


def test_report_counts_test_structures_sharing_a_pretraining_composition(tmp_path):
    data = _pretraining_data(tmp_path)
    run = make_synthetic_run(tmp_path / "eval")
    info = json.loads((run / CHECKPOINT_FILE).read_text())
    info["pretraining_manifest"] = {"path": str(data), "sha256": "ef" * 32}
    (run / CHECKPOINT_FILE).write_text(json.dumps(info))

    trained = {split_group(f, "composition")[1] for f in open_dataset(data, split="train")}
    assert 0 < len(trained) < len(CRYSTALS)
    dcdft = [name for name, _, _ in dcdft_entries()]
    overlap = pretraining_overlap(run)
    assert overlap["available"]
    assert overlap["tasks"]["eos"] == {
        "test_structures": len(dcdft),
        "share_composition": len(trained & set(dcdft)),
    }
    assert overlap["tasks"]["bulk"]["share_composition"] == len(trained & set(dcdft))
    # the pre-training data's own test split never shares a composition with its training split
    tested = sum(1 for _ in open_dataset(data, split="test"))
    assert overlap["tasks"]["frames"] == {"test_structures": tested, "share_composition": 0}

    md = reduce_units(run)["report.md"].read_text()
    assert f"| eos | {len(dcdft)} | {len(trained & set(dcdft))} |" in md


def test_overlap_is_not_known_without_the_pretraining_data(tmp_path):
    run = make_synthetic_run(tmp_path / "eval")  # its manifest path does not exist here
    overlap = pretraining_overlap(run)
    assert overlap["available"] is False and "no dataset manifest" in overlap["message"]
    assert "Test compositions against pre-training: not known" in (
        reduce_units(run)["report.md"].read_text()
    )
