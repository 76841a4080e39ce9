"""`foundation synth` end to end: the extxyz and its options file, then `--prep` with nothing quarantined."""

from __future__ import annotations

import ase.io
import numpy as np
import yaml
from foundation.data_prep.synth.generate import SynthConfig, generate_frames

from foundation.cli.main import main
from foundation.data.dataset import open_dataset
from foundation.data.manifest import Manifest


def test_synth_writes_frames_that_prep_takes_whole(tmp_path, capsys):
    out, data = tmp_path / "synth.extxyz", tmp_path / "data"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--frames",
                "24",
                "--teacher",
                "emt",
                "--seed",
                "3",
                "--no-progress",
                "--prep",
                str(data),
            ]
        )
        == 0
    )
    assert "quarantined 0" in capsys.readouterr().out
    options = yaml.safe_load(out.with_suffix(".synth.yaml").read_text())
    assert options["teacher"] == "emt" and options["frames"] == 24 and options["seed"] == 3

    images = ase.io.read(out, index=":")
    assert len(images) == 24 and {"structure_id", "frame_id", "source"} <= set(images[0].info)
    manifest = Manifest.load(data)
    assert manifest.quarantine.get("total", 0) == 0 and manifest.num_frames() == 24

    expected = {
        f.frame_id: f
        for f in generate_frames(SynthConfig(frames=24, teacher="emt", seed=3), progress=False)
    }
    for frame in open_dataset(data):
        original = expected[frame.frame_id]
        assert frame.structure_id == original.structure_id and frame.source == original.source
        assert np.isclose(frame.energy, original.energy, rtol=1e-12)
        assert np.allclose(frame.forces, original.forces, atol=1e-7)
        assert np.allclose(frame.stress, original.stress, atol=1e-12)
