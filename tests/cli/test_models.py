"""`foundation models`: the releases of FOUNDATION_MODELS with name, parent, size, elements and metrics."""

from __future__ import annotations

import json
import shutil

from foundation.cli.main import main
from tests.memory_limit import foundation_capped
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


def _broken_copies(models, good):
    """Copies of the release `good` whose release.json is broken in the ways a listing must survive."""
    broken = {
        "unknown-element": lambda info: {**info, "dataset": {"elements": [11, 500]}},
        "a-list": lambda info: [info],
        "bad-json": None,
        "not-utf8": None,
        "huge": None,
        "escape\x1b[31mred\x1b[0m": lambda info: info,
    }
    for name, change in broken.items():
        target = models / name
        shutil.copytree(good, target)
        info_path = target / "release.json"
        if change is not None:
            info_path.write_text(json.dumps(change(json.loads(info_path.read_text()))))
    (models / "bad-json" / "release.json").write_text('{"name": "bad-json", ')
    (models / "not-utf8" / "release.json").write_bytes(b'{"name": "\xff\xfe"}')
    with open(models / "huge" / "release.json", "wb") as fh:
        fh.truncate(6 << 30)  # 6 GB (sparse): read no further than its first MiB


def test_a_broken_entry_is_listed_as_broken_beside_the_others(tmp_path, monkeypatch):
    models = tmp_path / "models"
    good = write_tiny_release(models, name="good")
    _broken_copies(models, good)
    monkeypatch.setenv("FOUNDATION_MODELS", str(models))
    done = foundation_capped(["models"])
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[2:]}
    assert "step 0" in rows["good"] and "broken" not in rows["good"]
    assert (
        "broken: " in rows["unknown-element"] and "unknown element 500" in rows["unknown-element"]
    )
    assert "a JSON list, not an object" in rows["a-list"]
    assert "not a JSON file" in rows["bad-json"] and "can't decode" in rows["not-utf8"]
    assert "larger than 1,048,576 bytes; not read" in rows["huge"]
    assert "\x1b" not in done.stdout and "escape\\x1b[31mred\\x1b[0m" in rows
    assert "broken" not in rows["escape\\x1b[31mred\\x1b[0m"]
    entries = {e["name"]: e for e in json.loads(foundation_capped(["models", "--json"]).stdout)}
    assert entries["good"]["error"] is None and "escape\x1b[31mred\x1b[0m" in entries
    assert "larger than" in entries["huge"]["error"]
