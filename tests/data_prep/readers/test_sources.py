"""Every reader's frames carry the source tag the prep config sets per input (input_sources, else source), over
the tag the reader itself gives (MPtrj, Alexandria, VASP, an extxyz or ASE-db `source` key)."""

from __future__ import annotations

import json
from collections import Counter

import ase.io
from ase.db import connect
from foundation.data_prep.objects import prep_objects
from foundation.data_prep.pipeline import run_prep
from pymatgen.core import Lattice, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from foundation.data.dataset import open_dataset
from tests.conftest import FIXTURES

from ..helpers import prep_config, write_mptrj


def _inputs(tmp_path) -> dict[str, str]:
    """One small input per reader -> the tag the config gives it."""
    frames = list(ase.io.iread(FIXTURES / "dft" / "mptrj-sample.xyz", index=":6"))
    write_mptrj(tmp_path / "mptrj.json", frames)
    ase.io.write(
        tmp_path / "frames.xyz",
        list(ase.io.iread(FIXTURES / "dft" / "alexandria-sample.xyz", index=":4")),
        format="extxyz",
    )  # their own `source` keys are overridden
    with connect(str(tmp_path / "omat.aselmdb"), type="aselmdb") as db:
        for atoms in frames[:3]:
            db.write(atoms, source="from-the-row")
    with connect(str(tmp_path / "rows.db")) as db:
        for atoms in frames[3:6]:
            db.write(atoms)
    entry = ComputedStructureEntry(
        Structure(Lattice.cubic(3.0), ["Fe"], [[0, 0, 0]]),
        -8.25,
        entry_id="agm1",
        data={"forces": [[0.0, 0.0, 0.0]]},
    )
    (tmp_path / "alexandria.json").write_text(json.dumps({"entries": [entry.as_dict()]}))
    return {
        "mptrj.json": "MPtrj-PBE",
        "frames.xyz": "mine-r2scan",
        "omat.aselmdb": "OMat24-PBE",
        "rows.db": "rows-PBE",
        "alexandria.json": "Alexandria-PBE",
        str(FIXTURES / "vasp" / "outcar"): "VASP-HfO2",
    }


def test_each_input_gets_its_configured_tag(tmp_path):
    tags = _inputs(tmp_path)
    inputs = [p if p.startswith("/") else str(tmp_path / p) for p in tags]
    config = prep_config(
        inputs,
        tmp_path / "out",
        split={"train": 1.0},
        dedup=False,
        required=["energy"],
        input_sources={p: tag for p, tag in zip(inputs, tags.values())},
    )
    run_prep(config)
    by_tag = Counter(f.source for f in open_dataset(tmp_path / "out"))
    assert set(by_tag) == set(tags.values()), by_tag
    assert (
        by_tag["OMat24-PBE"] == 3 and by_tag["Alexandria-PBE"] == 1 and by_tag["mine-r2scan"] == 4
    )


def test_one_source_for_all_inputs_and_for_objects(tmp_path):
    tags = _inputs(tmp_path)
    inputs = [str(tmp_path / p) for p in tags if not p.startswith("/")]
    run_prep(
        prep_config(
            inputs, tmp_path / "out", split={"train": 1.0}, required=["energy"], source="mixed-PBE"
        )
    )
    assert {f.source for f in open_dataset(tmp_path / "out")} == {"mixed-PBE"}
    frames = list(ase.io.iread(FIXTURES / "dft" / "mptrj-sample.xyz", index=":4"))
    prep_objects(
        frames,
        out=str(tmp_path / "objects"),
        source="objects-PBE",
        progress=False,
        split={"train": 1.0},
    )
    assert {f.source for f in open_dataset(tmp_path / "objects")} == {"objects-PBE"}
