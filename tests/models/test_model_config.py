"""build_potential: every way to name a config, strict typing, and a config that rebuilds the same model."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from foundation.config import ConfigError, to_dict
from foundation.models import BACKBONES, ModelConfig, build_potential, resolve_model_config
from foundation.models.config import available_models, model_config_path

SCALABLE = ["scalable-xs", "scalable-s", "scalable-m", "scalable-l", "scalable-xl"]


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_backbone_has_a_config_file():
    names = available_models()
    for backbone in BACKBONES:
        if backbone != "painn":
            assert backbone in names
    assert set(SCALABLE) <= set(names)


def test_scalable_family_spans_100k_to_100m_parameters():
    with torch.device("meta"):  # no memory for the 100M-parameter size
        counts = [_parameters(build_potential(name)) for name in SCALABLE]
    assert counts == sorted(counts)
    assert 5e4 < counts[0] < 2e5 and 5e7 < counts[-1] < 2e8


def test_name_path_dict_dataclass_and_overrides_agree(tmp_path):
    by_name = resolve_model_config("schnet")
    by_path = resolve_model_config(model_config_path("schnet"))
    raw = yaml.safe_load(model_config_path("schnet").read_text())
    by_dict = resolve_model_config(raw)
    assert by_name == by_path == by_dict == resolve_model_config(by_name)
    small = resolve_model_config("schnet", ["backbone.hidden=16", "heads.denoise=direct"])
    assert (
        small.backbone.hidden == 16
        and small.heads.denoise == "direct"
        and by_name.backbone.hidden == 128
    )
    assert resolve_model_config(by_name, ["backbone.layers=2"]).backbone.layers == 2
    potential = build_potential("schnet", ["backbone.hidden=16", "backbone.layers=1"])
    assert potential.config.backbone.hidden == 16 and isinstance(potential.config, ModelConfig)


def test_saved_config_rebuilds_the_same_model(tmp_path):
    potential = build_potential(
        "torchmd_et", ["backbone.hidden=16", "backbone.num_heads=4", "heads.stress=direct"]
    )
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(to_dict(potential.config)))
    rebuilt = build_potential(path)
    assert rebuilt.config == potential.config
    rebuilt.load_state_dict(potential.state_dict())  # same architecture, key for key


@pytest.mark.parametrize(
    "override, message",
    [
        ("backbone.hiden=3", "backbone.hiden"),
        ("backbone.layers=two", "backbone.layers"),
        ("heads.forces=sometimes", "heads.forces"),
        ("backbone.name=transformer", "transformer"),
        ("backbone.num_heads=5", "num_heads"),
    ],
)
def test_bad_configs_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        build_potential("torchmd_et", [override])


def test_derivative_heads_need_an_energy():
    with pytest.raises(ConfigError, match="heads.forces"):
        resolve_model_config({"backbone": {"name": "schnet"}, "heads": {"energy": False}})


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="scalable-m"):
        build_potential("no-such-model")


def test_typed_backbone_config_is_kept():
    config = resolve_model_config("mpnn")
    assert type(config.backbone).__name__ == "MPNNConfig" and dataclasses.is_dataclass(
        config.backbone
    )
    assert config.backbone.edge_hidden == 16
