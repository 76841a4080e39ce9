"""Writing a release: the temporary directory of a killed `foundation release` is removed by the next one and
never listed by `foundation models`; a full disk names the file being written and its device."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from foundation.cli.main import main
from tests.release_helpers import write_tiny_release


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    return int(done.stdout)


def test_a_killed_releases_temporary_directory_is_removed_and_never_listed(
    tmp_path, monkeypatch, capsys
):
    models = tmp_path / "models"
    release = write_tiny_release(models, name="tiny")
    shutil.rmtree(
        release
    )  # as if `foundation release run --out models/tiny` was killed after SHA256SUMS
    killed = models / f".tiny.tmp-{_dead_pid()}"
    running = models / f".tiny.tmp-{os.getppid()}"  # a live process's: kept
    write_tiny_release(tmp_path / "other", name="tiny")
    for temporary in (killed, running):
        shutil.copytree(tmp_path / "other" / "tiny", temporary)
    monkeypatch.setenv("FOUNDATION_MODELS", str(models))
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["release", str(models / "run"), "--out", str(models / "tiny")]) == 0
    assert not killed.exists() and running.is_dir()
    capsys.readouterr()
    assert main(["models", "--json"]) == 0
    assert [entry["name"] for entry in json.loads(capsys.readouterr().out)] == ["tiny"]


def test_a_full_disk_names_the_file_being_written_and_its_device(tmp_path, tmpfs, capsys):
    run = write_tiny_release(tmp_path, name="tiny").parent / "run"
    small = tmpfs(tmp_path / "small", "size=16k")
    assert (run / "best" / "model.safetensors").stat().st_size > 16 * 1024
    assert main(["release", str(run), "--out", str(small / "tiny")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    written = small / f".tiny.tmp-{os.getpid()}" / "model.safetensors"
    assert line == f"error: no space left on tmpfs (mounted on {small}) writing {written}"
    assert not list(small.iterdir())  # nothing half-written is left
