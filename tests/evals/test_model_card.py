"""The model card opens with the Hugging Face hub's YAML front matter (license, library_name, tags, datasets)."""

from __future__ import annotations

import yaml
from foundation.evals.model_card import front_matter, model_card

from tests.release_helpers import write_tiny_release


def _meta(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_front_matter_of_a_release(tmp_path):
    release = write_tiny_release(tmp_path, license="CC-BY-4.0")
    meta = _meta((release / "README.md").read_text())
    assert meta["license"] == "cc-by-4.0" and meta["library_name"] == "foundation-mlip"
    assert {"interatomic-potential", "safetensors", "schnet"} <= set(meta["tags"])


def test_datasets_other_licenses_and_parents():
    info = {
        "name": "ft",
        "license": "Proprietary-1",
        "weights_sha256": "ab" * 32,
        "model": {"backbone": {"name": "painn"}},
        "parent": {"name": "base-v1"},
        "pretraining_manifest": {"path": "/data/prepared/mptrj-small", "sha256": None},
        "dataset": {"reader": {"inputs": [{"source": "mptrj"}, {"source": "alexandria"}]}},
    }
    meta = _meta(front_matter(info))
    assert meta["license"] == "other" and meta["license_name"] == "Proprietary-1"
    assert meta["datasets"] == ["alexandria", "mptrj"] and meta["base_model"] == "base-v1"
    del info["dataset"]
    assert _meta(model_card(info))["datasets"] == ["mptrj-small"]
