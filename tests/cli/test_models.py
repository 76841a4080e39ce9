"""`foundation models`: the releases of FOUNDATION_MODELS with name, parent, size, elements and metrics."""

from __future__ import annotations

import json

from foundation.cli.main import main
from tests.release_helpers import write_tiny_release


def test_lists_the_model_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FOUNDATION_MODELS", str(tmp_path / "models"))
    assert main(["models"]) == 0
    assert "no models in" in capsys.readouterr().out
    write_tiny_release(tmp_path / "models", name="tiny-b")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[1:3]
    assert header.split() == ["name", "parent", "backbone", "size", "elements", "validation"]
    assert row.startswith("tiny-b") and "schnet" in row and "Cl Cu Na O" in row and "step 0" in row
    assert main(["models", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["name"] == "tiny-b" and entry["elements"] == ["Cl", "Cu", "Na", "O"]
