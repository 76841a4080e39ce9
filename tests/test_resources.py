"""foundation.resources: the shipped configs are found by name and `configs/...` paths work from any directory."""

from __future__ import annotations

from pathlib import Path

from foundation.config import read_yaml
from foundation.resources import config_file, config_path, configs_dir

REPO = Path(__file__).resolve().parents[1]


def test_the_configs_folder_is_the_shipped_package():
    # an editable install maps foundation.configs to the repository's configs/ folder, the source of truth
    assert configs_dir().resolve() == (REPO / "configs").resolve()
    assert config_file("model", "schnet").is_file()


def test_configs_paths_resolve_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = config_path("configs/pretrain/efs_derivative.yaml")
    assert shipped == configs_dir() / "pretrain" / "efs_derivative.yaml"
    assert read_yaml("configs/cluster/local.yaml")["name"] == "local"
    # a file of that name here wins; other paths are left alone (their error names them)
    (tmp_path / "configs" / "pretrain").mkdir(parents=True)
    (tmp_path / "configs" / "pretrain" / "efs_derivative.yaml").write_text("model: schnet\n")
    assert config_path("configs/pretrain/efs_derivative.yaml") == Path(
        "configs/pretrain/efs_derivative.yaml"
    )
    assert config_path("configs/nope/x.yaml") == Path("configs/nope/x.yaml")
    assert config_path("elsewhere/x.yaml") == Path("elsewhere/x.yaml")
