"""Source tags at prep: the prep config tags each input's frames (input_sources, else `source`), a tag given by
the reader is kept when the config gives none, and `foundation prep --source` tags every input given."""

from __future__ import annotations

import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.pipeline import run_prep

from foundation.cli.main import main
from foundation.data.dataset import open_dataset


def _write(path, count: int, seed: int, tag: str | None = None) -> None:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces()
        atoms.info.update(frame_id=f"{path.stem}-{i}", structure_id=f"{path.stem}-{i}")
        if tag is not None:
            atoms.info["source"] = tag
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")


def test_source_of_resolves_files_directories_and_the_default(tmp_path):
    config = PrepConfig(
        inputs=[str(tmp_path)],
        out=str(tmp_path / "out"),
        source="default",
        input_sources={str(tmp_path / "mptrj"): "MPtrj-PBE", str(tmp_path / "omat.xyz"): "OMat24"},
    )
    assert config.source_of(str(tmp_path / "mptrj" / "part" / "a.json")) == "MPtrj-PBE"
    assert config.source_of(str(tmp_path / "omat.xyz")) == "OMat24"
    assert (
        config.source_of(str(tmp_path / "mptrj-extra.json")) == "default"
    )  # a prefix is not a parent folder
    assert PrepConfig(inputs=["x"], out="y").source_of("x") is None  # the reader's tag stays


def test_config_tags_win_and_reader_tags_stay_otherwise(tmp_path):
    _write(tmp_path / "tagged.xyz", 6, 0, tag="from-file")
    _write(tmp_path / "plain.xyz", 6, 1)
    run_prep(
        PrepConfig(
            inputs=[str(tmp_path / "tagged.xyz"), str(tmp_path / "plain.xyz")],
            out=str(tmp_path / "a"),
            split={"train": 1.0},
            progress=False,
            input_sources={str(tmp_path / "plain.xyz"): "mine"},
        )
    )
    assert {f.frame_id.split("-")[0]: f.source for f in open_dataset(tmp_path / "a")} == {
        "tagged": "from-file",
        "plain": "mine",
    }
    code = main(
        [
            "-q",
            "prep",
            str(tmp_path / "tagged.xyz"),
            str(tmp_path / "plain.xyz"),
            "--out",
            str(tmp_path / "b"),
            "--split",
            "train=1",
            "--source",
            "PBE-54",
            "--no-progress",
        ]
    )
    assert code == 0
    assert {f.source for f in open_dataset(tmp_path / "b")} == {"PBE-54"}
