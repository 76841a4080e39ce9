"""Typed configs (foundation/config.py): keys renamed to one spelling still read under their old name."""

from __future__ import annotations

import logging

import pytest
import yaml

from foundation.config import ConfigError, load_config
from foundation.models.config import ModelConfig
from foundation.train.config import TrainRunConfig


def test_a_model_json_written_with_max_neighbors_loads_with_a_warning(caplog):
    old = {"backbone": {"name": "schnet", "hidden": 8, "max_neighbors": 12}}
    with caplog.at_level(logging.WARNING, logger="foundation.config"):
        config = load_config(ModelConfig, old)
    assert config.backbone.max_neighbours == 12
    assert "'backbone.max_neighbors' is now spelled 'backbone.max_neighbours'" in caplog.text


def test_an_old_run_config_and_an_old_override_read_the_new_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"model": "schnet", "data": {"path": "/d", "max_neighbors": 7}}))
    assert load_config(TrainRunConfig, path).data.max_neighbours == 7
    assert (
        load_config(
            TrainRunConfig, {"model": "schnet"}, ["data.max_neighbors=3"]
        ).data.max_neighbours
        == 3
    )


def test_both_spellings_at_once_is_an_error():
    with pytest.raises(ConfigError, match="unknown key 'backbone.max_neighbors'"):
        load_config(
            ModelConfig, {"backbone": {"name": "schnet", "max_neighbors": 1, "max_neighbours": 2}}
        )
