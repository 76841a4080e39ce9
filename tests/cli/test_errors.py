"""User errors end every subcommand with one line on stderr and a non-zero exit; --debug shows the traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.cli.main import main
from foundation.config import ConfigError
from tests.conftest import FIXTURES

MISSING = "/nonexistent/r16"


def _user_error(capsys, argv: list[str]) -> str:
    """Run the CLI; assert a non-zero exit with exactly one line 'error: ...' on stderr; return that line."""
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "verify", MISSING],
        ["data", "stats", MISSING],
        ["prep", MISSING, "--out", "{tmp}/out"],
        ["train", "--config", MISSING + ".yaml"],
        ["train", "--resume", MISSING],
        ["sweep", "--config", MISSING + ".yaml"],
        ["ablation", "--config", MISSING + ".yaml"],
        ["synth", "--config", MISSING + ".yaml", "--out", "{tmp}/x.xyz"],
        ["release", MISSING, "--out", "{tmp}/release"],
        ["status", MISSING],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_missing_input_is_one_line_and_a_non_zero_exit(capsys, tmp_path, argv):
    line = _user_error(capsys, [a.format(tmp=tmp_path) for a in argv])
    assert MISSING in line


def _yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_a_yaml_tag_is_refused_in_one_line_and_debug_shows_the_traceback(capsys, tmp_path):
    config = _yaml(tmp_path, 'model: !!python/object/apply:os.system ["touch pwned"]\n')
    line = _user_error(capsys, ["train", "--config", config])
    assert config in line and "python/object/apply:os.system" in line
    with pytest.raises(ConfigError):
        main(["--debug", "train", "--config", config])
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


@pytest.mark.parametrize(
    "override, key",
    [
        ("optimizer.lr=-0.001", "optimizer.lr"),
        ("engine.ema_decay=1.0", "engine.ema_decay"),
        ("engine.ema_decay=-0.1", "engine.ema_decay"),
        ("engine.grad_clip=-1", "engine.grad_clip"),
        ("engine.collective_timeout_s=0", "engine.collective_timeout_s"),
        ("objective.noise_std=-0.1", "objective.noise_std"),
        ("objective.forces_huber_delta=0", "objective.forces_huber_delta"),
        ("objective.energy_huber_delta=-1", "objective.energy_huber_delta"),
    ],
)
def test_values_out_of_range_are_refused_at_config_load(capsys, tmp_path, override, key):
    config = _yaml(tmp_path, "train: {max_steps: 1}\n")
    line = _user_error(
        capsys, ["train", "--config", config, override, f"run_dir={tmp_path / 'run'}"]
    )
    assert key in line
    assert not (tmp_path / "run").exists()  # refused before anything started


def _prep_onto_tmpfs(capsys, mount: Path, options: str, sample: str, tmpfs) -> str:
    """The error line of `foundation prep` writing into a fresh tmpfs mounted with `options`."""
    tmpfs(mount, options)
    return _user_error(
        capsys,
        ["prep", str(FIXTURES / "dft" / sample), "--out", str(mount / "out"), "--no-progress"],
    )


def test_a_full_disk_names_device_and_file(capsys, tmp_path, tmpfs):
    small = tmp_path / "small"
    line = _prep_onto_tmpfs(capsys, small, "size=64k", "alexandria-sample.xyz", tmpfs)
    assert line.startswith(
        f"error: no space left on tmpfs (mounted on {small}) writing {small / 'out'}"
    )


def test_a_read_only_output_directory_is_one_line(capsys, tmp_path, tmpfs):
    read_only = tmp_path / "ro"
    line = _prep_onto_tmpfs(capsys, read_only, "ro,size=64k", "mpf-TP-sample.xyz", tmpfs)
    assert str(read_only / "out") in line and "Read-only file system" in line
