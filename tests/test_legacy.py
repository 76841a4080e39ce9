"""Files of foundation 0.1.0 load through the one converter (foundation/legacy.py), one test per old format;
today's configs and weights pass through it unchanged."""

from __future__ import annotations

import logging

import pytest
import torch
import yaml

from foundation.config import ConfigError, load_config, to_dict
from foundation.legacy import upgrade_config, upgrade_state_dict
from foundation.models import build_potential
from foundation.models.config import ModelConfig
from foundation.models.loading import load_potential
from foundation.train.checkpoint import export_model
from foundation.train.config import TrainRunConfig
from foundation.train.run_layout import BEST

DIRECT_HEADS = ["heads.forces=direct", "heads.stress=direct", "heads.denoise=direct"]


def _assert_same_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())


def test_a_model_json_with_max_neighbors_builds_its_model_with_a_warning(caplog):
    old = {"backbone": {"name": "schnet", "hidden": 8, "layers": 1, "max_neighbors": 12}}
    with caplog.at_level(logging.WARNING, logger="foundation.legacy"):
        potential = build_potential(old)
    assert potential.max_neighbours == 12
    assert (
        "'backbone.max_neighbors' is the foundation 0.1.0 spelling of 'backbone.max_neighbours'"
        in (caplog.text)
    )


def test_a_run_config_and_an_override_with_max_neighbors_read_the_new_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"model": "schnet", "data": {"path": "/d", "max_neighbors": 7}}))
    assert load_config(TrainRunConfig, path).data.max_neighbours == 7
    overridden = load_config(TrainRunConfig, {"model": "schnet"}, ["data.max_neighbors=3"])
    assert overridden.data.max_neighbours == 3


def test_both_spellings_at_once_is_an_error():
    with pytest.raises(ConfigError, match="unknown key 'backbone.max_neighbors'"):
        load_config(
            ModelConfig, {"backbone": {"name": "schnet", "max_neighbors": 1, "max_neighbours": 2}}
        )


@pytest.mark.parametrize(
    "model, overrides, old, new",
    [
        ("cgcnn", ["heads.forces=direct", "heads.stress=direct"], ".neighbor.", ".neighbour."),
        ("torchmd_et", [], ".neighbor_embedding.", ".neighbour_embedding."),
    ],
)
def test_weights_with_neighbor_module_names_load(model, overrides, old, new):
    torch.manual_seed(0)
    saved = build_potential(model, overrides).state_dict()
    assert any(new in key for key in saved)
    old_file = {key.replace(new, old): value for key, value in saved.items()}
    fresh = build_potential(model, overrides)
    fresh.load_state_dict(old_file, strict=True)
    _assert_same_state(fresh, saved)


def test_weights_without_direct_head_scales_load_with_scale_one():
    torch.manual_seed(0)
    potential = build_potential("schnet", DIRECT_HEADS)
    potential.set_normalization(forces_scale=0.7, stress_scale=0.004, noise_scale=0.1)
    scales = ("force_head.scale", "stress_head.scale", "denoise_head.scale")
    old_file = {k: v for k, v in potential.state_dict().items() if k not in scales}
    fresh = build_potential("schnet", DIRECT_HEADS)
    fresh.set_normalization(forces_scale=2.0, stress_scale=2.0, noise_scale=2.0)
    fresh.load_state_dict(old_file, strict=True)
    state = fresh.state_dict()
    assert all(state[name].item() == 1.0 for name in scales)
    assert all(torch.equal(state[k], v) for k, v in old_file.items())


def test_weights_the_current_code_writes_load_unchanged():
    torch.manual_seed(0)
    potential = build_potential("cgcnn", DIRECT_HEADS)
    potential.set_normalization(forces_scale=0.7, stress_scale=0.004, noise_scale=0.1)
    saved = potential.state_dict()
    converted = dict(saved)
    upgrade_state_dict(converted, "", saved.keys())
    assert list(converted) == list(saved)
    fresh = build_potential("cgcnn", DIRECT_HEADS)
    fresh.load_state_dict(saved, strict=True)
    _assert_same_state(fresh, saved)


def test_a_config_the_current_code_writes_passes_unchanged(caplog):
    written = to_dict(build_potential("torchmd_et", DIRECT_HEADS).config)
    with caplog.at_level(logging.WARNING, logger="foundation.legacy"):
        assert upgrade_config(written, "model.json") == written
    assert not caplog.records


def test_a_run_exported_by_0_1_0_loads_through_the_model_loader(tmp_path):
    torch.manual_seed(0)
    overrides = ["heads.forces=direct", "heads.stress=direct"]
    potential = build_potential("cgcnn", overrides)
    saved = potential.state_dict()
    config = to_dict(potential.config)
    config["backbone"]["max_neighbors"] = config["backbone"].pop("max_neighbours")
    old_weights = {
        key.replace(".neighbour.", ".neighbor."): value
        for key, value in saved.items()
        if key not in ("force_head.scale", "stress_head.scale")
    }
    export_model(tmp_path / "run" / BEST, old_weights, {"model": config, "step": 10})
    loaded = load_potential(tmp_path / "run")
    _assert_same_state(loaded, saved)
