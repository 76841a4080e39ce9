"""Models by name and release loading as a hub repository: names resolve through FOUNDATION_MODELS
(foundation/models/loading.py), the files a hub or git adds do not stop loading, a changed weights or config
file does, an edited model card only warns."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

import foundation
from foundation.models.loading import ModelNotFound, locate_model, model_dirs
from foundation.release import ReleaseError, verify_checksums
from foundation.zoo import list_models
from tests.release_helpers import write_tiny_release


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    write_tiny_release(root, name="tiny-a")
    shutil.rmtree(root / "run")
    return root


def _copy(models, tmp_path, name="tiny-a"):
    target = tmp_path / name
    shutil.copytree(models / name, target)
    return target


def test_names_resolve_through_the_model_directories(models, tmp_path, monkeypatch):
    monkeypatch.setenv("FOUNDATION_MODELS", f"{tmp_path / 'empty'}:{models}")
    assert model_dirs() == [tmp_path / "empty", models]
    assert locate_model("tiny-a").path == models / "tiny-a"
    assert locate_model(models / "tiny-a").path == models / "tiny-a"  # a path wins
    assert isinstance(foundation.load_calculator("tiny-a"), foundation.FoundationCalculator)
    with pytest.raises(ModelNotFound, match="known: tiny-a"):
        locate_model("tiny-b")
    [entry] = list_models()
    assert (entry.name, entry.backbone, entry.parent) == ("tiny-a", "schnet", None)
    assert entry.elements == ["Cl", "Cu", "Na", "O"] and entry.metrics == {"step": 0, "loss": 1.0}
    assert entry.size_bytes > (models / "tiny-a" / "model.safetensors").stat().st_size


def test_default_model_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("FOUNDATION_MODELS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert model_dirs() == [tmp_path / "foundation" / "models"]


def test_files_a_hub_adds_do_not_stop_loading(models, tmp_path):
    release = _copy(models, tmp_path)
    (release / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    (release / ".cache" / "huggingface" / "download").mkdir(parents=True)
    (release / ".cache" / "huggingface" / "download" / "model.safetensors.metadata").write_text(
        "x\n"
    )
    (release / ".git").mkdir()
    (release / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    verify_checksums(release)
    foundation.load_calculator(release)


@pytest.mark.parametrize("name", ["model.safetensors", "model.json", "config.yaml", "release.json"])
def test_a_changed_weights_or_config_file_stops_loading(models, tmp_path, name):
    release = _copy(models, tmp_path)
    with open(release / name, "ab") as fh:
        fh.write(b"\n" if name != "model.safetensors" else b"\x00")
    with pytest.raises(ReleaseError, match=f"{name}: sha256 mismatch"):
        foundation.load_calculator(release)


def test_a_git_lfs_pointer_is_named(models, tmp_path):
    release = _copy(models, tmp_path)
    (release / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:ab\n"
    )
    with pytest.raises(ReleaseError, match="Git LFS pointer"):
        foundation.load_calculator(release)


def test_an_edited_model_card_warns_when_loading_but_fails_verification(models, tmp_path, caplog):
    release = _copy(models, tmp_path)
    with open(release / "README.md", "a") as fh:
        fh.write("\nEdited on the hub.\n")
    with caplog.at_level(logging.WARNING, logger="foundation.release"):
        foundation.load_calculator(release)
    assert "README.md: sha256 mismatch" in caplog.text and "documentation only" in caplog.text
    with pytest.raises(ReleaseError, match="README.md"):
        verify_checksums(release)
    (release / "notes.txt").write_text("unlisted, not hidden\n")
    with pytest.raises(ReleaseError, match="notes.txt: not listed"):
        foundation.load_calculator(release)


def test_release_json_names_its_name(models):
    assert json.loads((models / "tiny-a" / "release.json").read_text())["name"] == "tiny-a"
