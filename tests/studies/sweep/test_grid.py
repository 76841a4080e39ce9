"""Sweep configs expand into self-contained points; the config hash tracks what determines a result."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import yaml

from foundation.config import ConfigError
from foundation.data.writer import write_dataset
from foundation.studies.sweep.config import load_sweep_config
from foundation.studies.sweep.grid import expand_grid, point_hash
from tests.data.helpers import full_frame


def sweep_mapping(tmp_path, **changes) -> dict:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"objective": {"stress_weight": 1.0}, "train": {"val_every": 50}}))
    mapping = {"name": "t", "base_config": str(base), "out_dir": str(tmp_path / "sweep"),
               "models": [{"name": "a", "model": "scalable-xs", "overrides": {"backbone.hidden": 8}},
                          {"name": "b", "model": "scalable-xs"}],
               "data": {"source": str(tmp_path / "src"), "frames": [20, 10]},
               "budget": {"steps": [30]}, "seeds": [0, 1], "overrides": {"data.max_atoms": 64},
               "loss": {"forces_mae": 1.0}}
    mapping.update(changes)
    return mapping


def test_grid_is_the_product_with_each_points_model_data_and_budget(tmp_path):
    points = expand_grid(load_sweep_config(sweep_mapping(tmp_path)))
    assert [p.point_id for p in points][:4] == ["a-D10-S30-seed0", "a-D10-S30-seed1", "a-D20-S30-seed0",
                                                "a-D20-S30-seed1"]
    assert len(points) == 8 and len({p.run_dir for p in points}) == 8
    p = points[0]
    cfg = p.train_config
    assert cfg["model"]["backbone"]["hidden"] == 8 and points[-1].train_config["model"]["backbone"]["hidden"] == 48
    assert cfg["train"]["max_steps"] == 30 and cfg["train"]["seed"] == 0 and points[1].train_config["train"]["seed"] == 1
    assert cfg["data"]["path"] == p.data_path and p.data_path.endswith("data/D10")
    assert cfg["data"]["max_atoms"] == 64 and cfg["objective"]["stress_weight"] == 1.0  # sweep and base kept
    assert cfg["run_dir"] == p.run_dir
    assert pickle.loads(pickle.dumps(p)) == p  # a Slurm array task receives it pickled by submitit


def test_hash_ignores_paths_and_follows_config_and_data(tmp_path):
    frames = [full_frame(seed=i) for i in range(4)]
    points = expand_grid(load_sweep_config(sweep_mapping(tmp_path)))
    for p in points[:2]:
        write_dataset(p.data_path, {"train": frames})
    a, b = points[0], points[1]
    assert point_hash(a) != point_hash(b)  # seeds differ
    moved = dataclasses.replace(a, run_dir="/elsewhere", train_config={**a.train_config, "run_dir": "/elsewhere"})
    assert point_hash(moved) == point_hash(a)  # where a run lives is not what it is
    other = expand_grid(load_sweep_config(sweep_mapping(tmp_path, overrides={"data.max_atoms": 32})))[0]
    assert point_hash(other) != point_hash(a)
    before = point_hash(a)
    write_dataset(a.data_path, {"train": frames[:3]})
    assert point_hash(a) != before


@pytest.mark.parametrize("change, message", [
    ({"budget": {"steps": [10], "flops": [1e9]}}, "exactly one"),
    ({"overrides": {"train.max_steps": 5}}, "set by the sweep"),
    ({"loss": {}}, "loss"),
    ({"models": [{"name": "a", "model": "scalable-xs"}, {"name": "a", "model": "scalable-s"}]}, "unique"),
    ({"models": [{"name": "a", "model": "no-such-model"}]}, "no-such-model"),
])
def test_bad_sweep_configs_are_named_errors(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        expand_grid(load_sweep_config(sweep_mapping(tmp_path, **change)))
