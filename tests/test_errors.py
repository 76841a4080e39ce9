"""A full disk becomes one clear DiskFull naming the device and the file, from real ENOSPC errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from foundation.errors import DiskFull, device_of, writing


@pytest.mark.skipif(
    not Path("/dev/full").is_char_device(),
    reason="no /dev/full here (the tmpfs test below covers it)",
)
def test_enospc_from_dev_full_names_device_and_file():
    with pytest.raises(DiskFull) as info:
        with writing("/dev/full"), open("/dev/full", "wb") as fh:
            fh.write(b"x" * 4096)
            fh.flush()
    assert str(info.value).startswith("no space left on ") and str(info.value).endswith(
        "writing /dev/full"
    )
    assert isinstance(info.value.__cause__, OSError)


def test_other_errors_pass_unchanged(tmp_path):
    with pytest.raises(ValueError, match="not a disk problem"):
        with writing(tmp_path / "x"):
            raise ValueError("not a disk problem")
    with pytest.raises(
        RuntimeError, match="plenty of space"
    ):  # a RuntimeError on a device with free space
        with writing(tmp_path / "x"):
            raise RuntimeError("plenty of space")


def test_device_of_names_the_mount(tmp_path):
    assert "mounted on /" in device_of(tmp_path / "not" / "yet" / "there")


@pytest.fixture
def small_tmpfs(tmp_path, tmpfs):
    """A 2 MiB tmpfs mounted for the test (needs root and mount permission)."""
    return tmpfs(tmp_path / "small", "size=2m")


def test_plain_writes_torch_save_and_safetensors_on_a_full_tmpfs(small_tmpfs: Path):
    with pytest.raises(DiskFull) as info:
        with writing(small_tmpfs / "log.txt"), open(small_tmpfs / "log.txt", "wb") as fh:
            fh.write(b"x" * (4 << 20))
    assert (
        str(info.value)
        == f"no space left on tmpfs (mounted on {small_tmpfs}) writing {small_tmpfs / 'log.txt'}"
    )
    assert isinstance(info.value.__cause__, OSError)
    (small_tmpfs / "log.txt").unlink()
    big = {"w": torch.zeros(1 << 20)}  # 4 MiB of float32 on a 2 MiB device
    with pytest.raises(DiskFull) as info:
        with writing(small_tmpfs / "model.pt"):
            torch.save(big, small_tmpfs / "model.pt")  # torch raises a RuntimeError with no errno
    assert f"mounted on {small_tmpfs}" in str(info.value) and "model.pt" in str(info.value)
    (small_tmpfs / "model.pt").unlink()
    with pytest.raises(DiskFull, match="model.safetensors"):
        with writing(small_tmpfs / "model.safetensors"):
            save_file(big, str(small_tmpfs / "model.safetensors"))
