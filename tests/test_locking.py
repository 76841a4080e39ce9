"""One writer per directory: two real processes contend for a DirectoryLock."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from foundation import locking
from foundation.locking import LOCK_NAME, DirectoryLock, DirectoryLocked

HOLDER = textwrap.dedent("""
    import sys
    from foundation.locking import DirectoryLock
    lock = DirectoryLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    sys.stdin.read()  # hold until the test closes stdin (or kills us)
    lock.release()
    print("released", flush=True)
""")


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of tmp_path/dir; yields (process, directory)."""
    directory = tmp_path / "dir"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "locked"
    yield process, directory
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_live_owner_refuses_the_second_writer_naming_directory_and_owner(holder):
    process, directory = holder
    with pytest.raises(DirectoryLocked) as info:
        DirectoryLock(directory).acquire()
    message = str(info.value)
    assert str(directory) in message and f"pid {process.pid}" in message and "in use" in message
    owner = json.loads((directory / LOCK_NAME).read_text())
    assert owner["pid"] == process.pid  # the refused writer left the owner's record alone
    process.stdin.close()  # the owner releases: now the directory is free
    assert process.stdout.readline().strip() == "released"
    process.wait()
    assert not (directory / LOCK_NAME).exists()
    with DirectoryLock(directory) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (directory / LOCK_NAME).exists()


def test_the_lock_of_a_killed_owner_is_taken_over_with_a_message(holder, caplog):
    process, directory = holder
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (
        json.loads((directory / LOCK_NAME).read_text())["pid"] == process.pid
    )  # the dead owner's record stays
    with caplog.at_level(logging.WARNING, logger="foundation.locking"):
        lock = DirectoryLock(directory).acquire()
    try:
        assert f"pid {process.pid}" in caplog.text and "no longer running" in caplog.text
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    finally:
        lock.release()


def test_one_process_cannot_take_the_same_directory_twice(tmp_path):
    with DirectoryLock(tmp_path):
        with pytest.raises(DirectoryLocked, match=f"pid {os.getpid()}"):
            DirectoryLock(tmp_path).acquire()


def _no_flock(fd, operation):
    raise OSError(errno.ENOLCK, "No locks available")


def test_without_flock_the_owner_record_decides(holder, monkeypatch, tmp_path):
    process, directory = holder
    monkeypatch.setattr(locking.fcntl, "flock", _no_flock)
    with pytest.raises(DirectoryLocked, match=f"pid {process.pid}"):  # a live owner on this host
        DirectoryLock(directory).acquire()
    process.kill()
    process.wait()
    with DirectoryLock(directory) as lock:  # a dead one is taken over
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    (elsewhere / LOCK_NAME).write_text(json.dumps({"host": "another-node", "pid": 1, "started": 0}))
    with pytest.raises(
        DirectoryLocked, match="another-node"
    ):  # another host's process cannot be checked
        DirectoryLock(elsewhere).acquire()
