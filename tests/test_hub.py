"""foundation.hub: without huggingface_hub, --push is one clear line before any work is done (pushing itself needs
a network and is not exercised here)."""

from __future__ import annotations

import importlib.util

import pytest

from foundation.cli.main import main
from foundation.errors import UserError
from foundation.hub import push_release, require_hub
from tests.release_helpers import write_tiny_release


@pytest.fixture
def no_hub(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "huggingface_hub" else real(name, *a),
    )


def test_push_without_huggingface_hub_is_a_clear_error(no_hub, tmp_path, capsys):
    release = write_tiny_release(tmp_path)
    with pytest.raises(UserError, match="pip install huggingface_hub"):
        require_hub()
    with pytest.raises(UserError, match="needs huggingface_hub"):
        push_release(release, "me/tiny")
    assert (
        main(
            [
                "release",
                str(tmp_path / "run"),
                "--out",
                str(tmp_path / "pushed"),
                "--push",
                "me/tiny",
            ]
        )
        == 2
    )
    assert "needs huggingface_hub" in capsys.readouterr().err
    assert not (tmp_path / "pushed").exists()  # checked before the release was written
