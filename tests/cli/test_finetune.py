"""`foundation finetune --from RELEASE --config configs/finetune/efs.yaml data.path=DIR train.max_steps=N
run_dir=DIR`: fine-tunes a release on real frames of other DFT settings, the run releases like any other and its
card names its parent; an element the parent never saw, or a parent that is not one, ends in one clear line."""

from __future__ import annotations

import json

import pytest
import yaml

from foundation.cli.main import main
from foundation.files import sha256_file
from tests.train.finetune_helpers import parent_dataset, train_parent, user_frames, write_frames

RECIPE = "configs/finetune/efs.yaml"
SMALL = [
    "train.max_steps=2",
    "train.val_every=2",
    "train.checkpoint_every=2",
    "train.progress=false",
    "data.num_workers=0",
    "data.max_atoms=48",
    "engine.zero_stage=0",
    "schedule.warmup_steps=0",
]


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here runs torch on one thread (tests/conftest.py one_thread)."""


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """(parent's data, its release): a tiny SchNet trained 3 steps on real MPtrj frames, released as tiny-parent."""
    root = tmp_path_factory.mktemp("finetune-cli")
    data = parent_dataset(root / "data")
    run = train_parent(data, root / "run")
    assert main(["release", str(run), "--out", str(root / "release"), "--name", "tiny-parent"]) == 0
    return data, root / "release"


def test_finetune_a_release_and_release_the_result(parent, tmp_path):
    parent_data, release = parent
    frames = user_frames(parent_data)
    elements = {int(z) for f in frames[:30] for z in f.numbers}
    val = [f for f in frames[30:] if set(int(z) for z in f.numbers) <= elements][:8]
    user = write_frames(tmp_path / "mine", frames[:30], val)
    run = tmp_path / "ft"
    assert (
        main(
            [
                "finetune",
                "--from",
                str(release),
                "--config",
                RECIPE,
                f"data.path={user}",
                f"run_dir={run}",
                "finetune.freeze_layers=1",
                f"finetune.replay_path={parent_data}",
                "finetune.replay_fraction=0.2",
                *SMALL,
            ]
        )
        == 0
    )
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (
        config["finetune"]["parent"] == str(release.resolve())
        and config["model"]["backbone"]["name"] == "schnet"
    )
    out = tmp_path / "release"
    assert main(["release", str(run), "--out", str(out), "--name", "tiny-mine"]) == 0
    info = json.loads((out / "release.json").read_text())
    parent_info = json.loads((release / "release.json").read_text())
    assert info["parent"]["name"] == "tiny-parent" and info["parent"]["kind"] == "release"
    assert (
        info["parent"]["weights_sha256"]
        == parent_info["weights_sha256"]
        == sha256_file(release / "model.safetensors")
    )
    card = (out / "README.md").read_text()
    assert (
        "## Fine-tuned from" in card
        and "tiny-parent" in card
        and parent_info["weights_sha256"] in card
    )
    assert "base_model: tiny-parent" in card.split("---")[1]  # the hub's front matter
    from foundation import load_calculator

    assert load_calculator(out).potential.config.backbone.name == "schnet"


def test_unseen_elements_and_bad_parents_are_one_line(parent, tmp_path, capsys):
    parent_data, release = parent
    frames = user_frames(parent_data, unseen=True)
    user = write_frames(tmp_path / "exotic", frames[:16], frames[16:20])
    assert (
        main(
            [
                "finetune",
                "--from",
                str(release),
                f"data.path={user}",
                f"run_dir={tmp_path / 'ft'}",
                *SMALL,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1
        and "never occur in the training data" in err
        and "tiny-parent" in err
    )
    assert not (tmp_path / "ft" / "checkpoints").exists()
    assert (
        main(
            [
                "finetune",
                "--from",
                str(tmp_path),
                f"data.path={user}",
                f"run_dir={tmp_path / 'ft2'}",
                *SMALL,
            ]
        )
        == 2
    )
    assert "neither a release directory" in capsys.readouterr().err
