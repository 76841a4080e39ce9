"""Progress bars of library calls (foundation/progress.py): on stderr, off on request or under FOUNDATION_PROGRESS=0."""

from __future__ import annotations

from foundation.progress import PROGRESS_ENV, progress_bar


def test_a_bar_draws_on_stderr_unless_turned_off(capsys, monkeypatch):
    assert list(progress_bar(range(2), desc="a")) == [0, 1]
    assert "a: 100%" in capsys.readouterr().err
    assert list(progress_bar(range(2), desc="b", enabled=False)) == [0, 1]
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert list(progress_bar(range(2), desc="c")) == [0, 1]
    assert capsys.readouterr().err == ""
