"""Sweep configs expand into self-contained points; the config hash tracks what determines a result."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import yaml
from foundation.studies.sweep.config import load_sweep_config
from foundation.studies.sweep.grid import expand_grid, point_hash

from foundation.config import ConfigError
from foundation.data.writer import write_dataset
from tests.data.helpers import full_frame


def sweep_mapping(tmp_path, **changes) -> dict:
    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump({"objective": {"stress_weight": 1.0}, "train": {"val_every": 50}})
    )
    mapping = {
        "name": "t",
        "design": "fixed_steps",
        "base_config": str(base),
        "out_dir": str(tmp_path / "sweep"),
        "models": [
            {"name": "a", "model": "scalable-xs", "overrides": {"backbone.hidden": 8}},
            {"name": "b", "model": "scalable-xs"},
        ],
        "data": {"source": str(tmp_path / "src"), "frames": [20, 10]},
        "budget": {"steps": [30]},
        "seeds": [0, 1],
        "overrides": {"data.max_atoms": 64},
        "loss": {"forces_mae": 1.0},
    }
    mapping.update(changes)
    return mapping


def test_grid_is_the_product_with_each_points_model_data_and_budget(tmp_path):
    points = expand_grid(load_sweep_config(sweep_mapping(tmp_path)))
    assert [p.point_id for p in points][:4] == [
        "a-D10-S30-seed0",
        "a-D10-S30-seed1",
        "a-D20-S30-seed0",
        "a-D20-S30-seed1",
    ]
    assert len(points) == 8 and len({p.run_dir for p in points}) == 8
    p = points[0]
    cfg = p.train_config
    assert (
        cfg["model"]["backbone"]["hidden"] == 8
        and points[-1].train_config["model"]["backbone"]["hidden"] == 48
    )
    assert (
        cfg["train"]["max_steps"] == 30
        and cfg["train"]["seed"] == 0
        and points[1].train_config["train"]["seed"] == 1
    )
    assert cfg["data"]["path"] == p.data_path and p.data_path.endswith("data/D10")
    assert (
        cfg["data"]["max_atoms"] == 64 and cfg["objective"]["stress_weight"] == 1.0
    )  # sweep and base kept
    assert cfg["run_dir"] == p.run_dir
    assert pickle.loads(pickle.dumps(p)) == p  # a Slurm array task receives it pickled by submitit


def test_hash_ignores_paths_and_follows_config_and_data(tmp_path):
    frames = [full_frame(seed=i) for i in range(4)]
    points = expand_grid(load_sweep_config(sweep_mapping(tmp_path)))
    for p in points[:2]:
        write_dataset(p.data_path, {"train": frames})
    a, b = points[0], points[1]
    assert point_hash(a) != point_hash(b)  # seeds differ
    moved = dataclasses.replace(
        a, run_dir="/elsewhere", train_config={**a.train_config, "run_dir": "/elsewhere"}
    )
    assert point_hash(moved) == point_hash(a)  # where a run lives is not what it is
    other = expand_grid(
        load_sweep_config(sweep_mapping(tmp_path, overrides={"data.max_atoms": 32}))
    )[0]
    assert point_hash(other) != point_hash(a)
    before = point_hash(a)
    write_dataset(a.data_path, {"train": frames[:3]})
    assert point_hash(a) != before


def converge_mapping(tmp_path, **changes) -> dict:
    """A data_scaling sweep: no budget, trained to convergence, DFT-only validation, a prediction beyond the grid."""
    mapping = sweep_mapping(
        tmp_path,
        design="data_scaling",
        budget={},
        convergence={"max_passes": 20, "patience": 3, "validate_every_passes": 0.5},
        readout={"validation_sources": ["MPtrj", "Alexandria"], "baseline_ratio": 0.8},
        prediction={"frames": 40},
    )
    mapping.update(changes)
    return mapping


def test_data_scaling_points_carry_convergence_and_validation_sources(tmp_path):
    from foundation.studies.sweep.grid import data_sizes, prediction_points

    config = load_sweep_config(converge_mapping(tmp_path))
    points = expand_grid(config)
    assert [p.point_id for p in points][:2] == ["a-D10-conv-seed0", "a-D10-conv-seed1"] and len(
        points
    ) == 8
    assert all(p.budget_kind == "converge" and p.budget == 20 and p.role == "grid" for p in points)
    assert points[0].convergence == {
        "max_passes": 20,
        "patience": 3,
        "validate_every_passes": 0.5,
        "min_validate_steps": 10,
    }
    assert points[0].train_config["data"]["validation_sources"] == ["MPtrj", "Alexandria"]
    predicted = prediction_points(config)
    assert [p.point_id for p in predicted] == [
        "b-D40-conv-seed0",
        "b-D40-conv-seed1",
    ]  # the largest (last) model
    assert all(p.role == "prediction" for p in predicted) and data_sizes(config) == [10, 20, 40]
    frames = [full_frame(seed=i) for i in range(4)]
    write_dataset(points[0].data_path, {"train": frames})
    patient = expand_grid(
        load_sweep_config(converge_mapping(tmp_path, convergence={"patience": 5}))
    )[0]
    assert point_hash(patient) != point_hash(
        points[0]
    )  # the convergence rule is part of what a point is


@pytest.mark.parametrize(
    "change, message",
    [
        ({"design": "chinchilla"}, "design"),
        ({"design": "data_scaling"}, "trains every point to convergence"),
        (
            {"design": "data_scaling", "budget": {}, "seeds": [0]},
            "at least 2 for design data_scaling",
        ),
        ({"design": "data_scaling", "budget": {}, "convergence": {"patience": 0}}, "patience"),
        ({"design": "data_scaling", "budget": {}, "convergence": {"max_pases": 3}}, "max_pases"),
        (
            {"design": "data_scaling", "budget": {}, "overrides": {"train.val_every": 5}},
            "set by the sweep",
        ),
        ({"design": "data_scaling", "budget": {}, "prediction": {"frames": 20}}, "is a grid point"),
        (
            {
                "design": "data_scaling",
                "budget": {},
                "prediction": {"frames": 40, "model": {"name": "a", "model": "scalable-xs"}},
            },
            "grid model's name",
        ),
        ({"design": "iso_flop"}, "needs budget.flops"),
        ({"design": "iso_flop", "budget": {"flops": [1e9, 1e10]}}, "give one size"),
        ({"prediction": {"frames": 40}}, "only design data_scaling"),
        ({"readout": {"baseline_ratio": 1.5}}, "baseline_ratio"),
        ({"readout": {"baseline": 0.5}}, "baseline"),
        ({"seeds": [0, 0]}, "distinct seeds"),
        ({"overrides": {"data.validation_sources": ["MPtrj"]}}, "readout.validation_sources"),
        ({"budget": {"steps": [10], "flops": [1e9]}}, "exactly one"),
        ({"overrides": {"train.max_steps": 5}}, "set by the sweep"),
        ({"loss": {}}, "loss"),
        (
            {
                "models": [
                    {"name": "a", "model": "scalable-xs"},
                    {"name": "a", "model": "scalable-s"},
                ]
            },
            "unique",
        ),
        ({"models": [{"name": "a", "model": "no-such-model"}]}, "no-such-model"),
    ],
)
def test_bad_sweep_configs_are_named_errors(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        expand_grid(load_sweep_config(sweep_mapping(tmp_path, **change)))
