"""Validation on chosen sources (data.validation_sources): DFT frames make the validation loss, teacher frames are
reported apart; the fit check (data.fit_check_frames) measures the same errors on training frames; early stopping
(train.early_stop_patience) stops after that many validations without a new best."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest

from foundation.config import ConfigError
from foundation.data.ase_convert import frame_from_atoms
from foundation.data.writer import write_dataset
from foundation.train.config import load_train_config
from foundation.train.datasets import BatchBuilder
from foundation.train.loader import build_split_loader
from foundation.train.runner import run_training
from foundation.train.validation import (
    EXCLUDED,
    FIT,
    fit_check_loader,
    source_matches,
    split_by_source,
)
from tests.conftest import FIXTURES
from tests.train.helpers import element_references, real_frames, tiny_config


def teacher_frames() -> list:
    """The three CHGNet-labelled fixture frames, with their own source tags (synthetic-chgnet-0.3.0-...)."""
    return [
        frame_from_atoms(
            a,
            frame_id=a.info["frame_id"],
            structure_id=a.info["structure_id"],
            source=a.info["source"],
        )
        for a in ase.io.iread(FIXTURES / "teacher" / "teacher-chgnet-sample.extxyz", index=":")
    ]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """24 DFT training frames; validation: 8 DFT frames (MPtrj) and 3 teacher frames, interleaved."""
    dft, teacher = real_frames(32), teacher_frames()
    val = dft[24:28] + teacher[:2] + dft[28:32] + teacher[2:]
    path = tmp_path_factory.mktemp("mixed") / "dataset"
    write_dataset(
        path,
        {"train": dft[:24], "val": val},
        shard_size=5,
        element_references=element_references(dft + teacher),
    )
    return path, val


def mean_abs_force(frames) -> float:
    return float(np.mean(np.abs(np.concatenate([f.forces.reshape(-1) for f in frames]))))


def loaded_ids(split_loader) -> list[str]:
    """The frame ids one pass of a split loader yields, in order."""
    return [fid for item in split_loader.loader(0) for fid in item.clean.frame_ids]


def test_patterns_match_source_tags():
    assert source_matches("MPtrj", ["MPtrj", "Alexandria"]) and source_matches(
        "synthetic-chgnet-0.3.0-relax", ["synthetic-*"]
    )
    assert not source_matches("synthetic-chgnet-0.3.0-relax", ["MPtrj", "Internal"])
    assert not source_matches("mptrj", ["MPtrj"])  # tags are case-sensitive


def test_split_keeps_matching_frames_in_one_loader_and_the_rest_in_another(mixed):
    path, val = mixed
    cfg = load_train_config(tiny_config(path, path.parent / "run"))
    loader = build_split_loader(
        cfg.data, "val", BatchBuilder(4.0), rank=0, world_size=1, grad_accum=1, seed=0, train=False
    )
    kept, other = split_by_source(loader, ["MPtrj"])
    assert loaded_ids(kept) == [f.frame_id for f in val if f.source == "MPtrj"]
    assert (
        loaded_ids(other) == [f.frame_id for f in val if f.source != "MPtrj"]
        and len(loaded_ids(other)) == 3
    )
    assert split_by_source(loader, []) == (loader, None)
    assert split_by_source(loader, ["MPtrj", "synthetic-*"])[1] is None
    with pytest.raises(ValueError, match=r"no validation frame.*'MPtrj', 'synthetic-chgnet-0.3.0-"):
        split_by_source(loader, ["Alexandria"])


def test_run_validates_on_dft_frames_and_reports_teacher_frames_apart(mixed, tmp_path):
    path, val = mixed
    cfg = tiny_config(
        path,
        tmp_path / "run",
        data={
            "path": str(path),
            "max_atoms": 48,
            "num_workers": 0,
            "validation_sources": ["MPtrj"],
        },
        train={
            "max_steps": 2,
            "log_every": 1,
            "val_every": 2,
            "checkpoint_every": 2,
            "progress": False,
        },
    )
    out = run_training(load_train_config(cfg))["val"]
    # the trivial baseline predicts zero forces: its force MAE is the mean |F| of exactly the frames validated
    dft = [f for f in val if f.source == "MPtrj"]
    teacher = [f for f in val if f.source != "MPtrj"]
    assert out["forces_baseline_mae"] == pytest.approx(mean_abs_force(dft), rel=1e-5)
    assert out[EXCLUDED + "forces_baseline_mae"] == pytest.approx(mean_abs_force(teacher), rel=1e-5)
    assert np.isfinite(out[EXCLUDED + "forces_mae"]) and np.isfinite(out[EXCLUDED + "loss"])
    assert mean_abs_force(dft) != pytest.approx(mean_abs_force(dft + teacher), rel=1e-3)


@pytest.fixture(scope="module")
def mixed_train(tmp_path_factory):
    """11 training frames of two sources: 4 MPtrj, 1 teacher, 4 MPtrj, 2 teacher; validation: 4 MPtrj frames."""
    dft, teacher = real_frames(12), teacher_frames()
    train = dft[:4] + teacher[:1] + dft[4:8] + teacher[1:]
    path = tmp_path_factory.mktemp("mixed_train") / "dataset"
    write_dataset(
        path,
        {"train": train, "val": dft[8:12]},
        shard_size=3,
        element_references=element_references(dft + teacher),
    )
    return path, train


def test_fit_check_takes_evenly_spaced_training_frames_of_the_validation_sources(mixed_train):
    path, train = mixed_train
    cfg = load_train_config(tiny_config(path, path.parent / "run"))
    loader = build_split_loader(
        cfg.data,
        "train",
        BatchBuilder(4.0),
        rank=0,
        world_size=1,
        grad_accum=1,
        seed=0,
        train=False,
    )
    assert loaded_ids(fit_check_loader(loader, [], 100)) == [
        f.frame_id for f in train
    ]  # more than there are: all
    spaced = [
        train[i] for i in (0, 2, 5, 8, 10)
    ]  # linspace(0, 10, 5) rounded half to even; 10 is a teacher frame
    assert loaded_ids(fit_check_loader(loader, [], 5)) == [f.frame_id for f in spaced]
    assert loaded_ids(fit_check_loader(loader, ["MPtrj"], 5)) == [
        f.frame_id for f in spaced if f.source == "MPtrj"
    ]
    with pytest.raises(
        ValueError, match=r"fit_check_frames: none of 5 training frames.*'MPtrj', 'synthetic-"
    ):
        fit_check_loader(loader, ["Alexandria"], 5)


def test_run_logs_the_fit_check_on_training_frames(mixed_train, tmp_path):
    path, train = mixed_train
    cfg = tiny_config(
        path,
        tmp_path / "run",
        data={
            "path": str(path),
            "max_atoms": 48,
            "num_workers": 0,
            "validation_sources": ["MPtrj"],
            "fit_check_frames": 100,
        },
        train={
            "max_steps": 2,
            "log_every": 1,
            "val_every": 2,
            "checkpoint_every": 2,
            "progress": False,
        },
    )
    out = run_training(load_train_config(cfg))["val"]
    # zero forces: the baseline's force MAE is the mean |F| of exactly the training frames of the chosen source
    dft = [f for f in train if f.source == "MPtrj"]
    assert out[FIT + "forces_baseline_mae"] == pytest.approx(mean_abs_force(dft), rel=1e-5)
    assert mean_abs_force(dft) != pytest.approx(mean_abs_force(train), rel=1e-3)
    assert np.isfinite(out[FIT + "energy_mae"]) and np.isfinite(out[FIT + "loss"])


def test_early_stopping_after_patience_validations_and_on_resume(mixed, tmp_path):
    path, _ = mixed
    # lr far below the weights' float32 resolution: the validation loss soon stops improving (zero biases still move)
    cfg = load_train_config(
        tiny_config(
            path,
            tmp_path / "run",
            optimizer={"lr": 1e-14},
            train={
                "max_steps": 40,
                "log_every": 2,
                "val_every": 2,
                "checkpoint_every": 4,
                "early_stop_patience": 2,
                "progress": False,
            },
        )
    )
    summary = run_training(cfg)
    assert summary["early_stopped"] and summary["step"] == summary["best_step"] + 2 * 2 < 40
    again = run_training(cfg)  # resumed: stops at once, at the same step
    assert again["early_stopped"] and again["step"] == summary["step"]


def test_bad_options_are_config_errors(mixed, tmp_path):
    path, _ = mixed
    with pytest.raises(ConfigError, match="early_stop_patience"):
        load_train_config(tiny_config(path, tmp_path, train={"early_stop_patience": -1}))
    with pytest.raises(ConfigError, match="fit_check_frames"):
        load_train_config(
            tiny_config(path, tmp_path, data={"path": str(path), "fit_check_frames": -1})
        )
    with pytest.raises(ConfigError, match="validation_sources"):
        load_train_config(
            tiny_config(path, tmp_path, data={"path": str(path), "validation_sources": [" "]})
        )
