"""No program runs because of a file (data/remote.py check_location): a crafted location whose pipe: command
would create a marker file, in every file each command reads a dataset location from. The marker never appears;
where the command refuses, its one-line error names the file and the key. A pipe: location given on the user's
own command line runs only with --allow-pipe."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from foundation.cli.main import main
from foundation.data.remote import ALLOW_ENV, GRANTED_ENV
from foundation.data.writer import write_dataset
from foundation.release import write_checksums
from tests.data.helpers import full_frame
from tests.evals.conftest import FIXTURES
from tests.release_helpers import write_tiny_release


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """The file a crafted command would create; no grant or opt-in from the test's own environment."""
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.setenv(GRANTED_ENV, "[]")
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a command from a file ran"


def _command(marker) -> str:
    return f"pipe:touch {marker}; cat /dev/null"


@pytest.fixture
def crafted_release(tmp_path, marker):
    """A release whose release.json and config.yaml name the crafted command, SHA256SUMS remade to match."""
    release = write_tiny_release(tmp_path / "r")
    info = json.loads((release / "release.json").read_text())
    info["pretraining_manifest"] = {"path": _command(marker), "sha256": "ab" * 32}
    (release / "release.json").write_text(json.dumps(info))
    config = yaml.safe_load((release / "config.yaml").read_text())
    config["data"] = {"path": _command(marker), "container": "wds"}
    (release / "config.yaml").write_text(yaml.safe_dump(config))
    write_checksums(release)
    return release


@pytest.fixture
def crafted_run(tmp_path, marker):
    """A run directory whose config.yaml has data.path set to the crafted command."""
    write_tiny_release(tmp_path / "r")
    run = tmp_path / "r" / "run"
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"] = {"path": _command(marker), "container": "wds"}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def _refused(capsys, where: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {where}: 'pipe:touch "), err
    assert "would run a program" in err[0]


def test_eval_of_a_release(crafted_release, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", "--checkpoint", str(crafted_release), "--suite", "configs/evals/quick.yaml"]
    assert main([*args, "--out", str(out)]) == 2
    _refused(capsys, f"{crafted_release}/release.json: pretraining_manifest.path")


def test_eval_of_a_run_directory(crafted_run, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", "--checkpoint", str(crafted_run), "--suite", "configs/evals/quick.yaml"]
    assert main([*args, "--out", str(out)]) == 2
    _refused(capsys, f"{crafted_run}/config.yaml: data.path")


def test_train_resume(crafted_run, capsys):
    assert main(["train", "--resume", str(crafted_run)]) == 2
    _refused(capsys, f"{crafted_run}/config.yaml: data.path")


def test_finetune_from_a_release(crafted_release, tmp_path, capsys):
    """The parent is read whole (checksums, model, provenance); its pre-training location is never opened. The
    user's data hold an element the parent never saw, so the run stops right after reading the parent."""
    data = tmp_path / "mine"
    write_dataset(data, {"train": [full_frame(i, natoms=4) for i in range(8)]})
    args = ["finetune", "--from", str(crafted_release), f"data.path={data}"]
    assert main([*args, f"run_dir={tmp_path / 'ft'}"]) == 2
    assert "never occur in the training data of the parent" in capsys.readouterr().err


def test_predict_with_a_release(crafted_release, tmp_path):
    out = tmp_path / "labelled.extxyz"
    inputs = [str(FIXTURES / "dft" / "mptrj-sample.xyz"), "--out", str(out)]
    assert main(["predict", str(crafted_release), *inputs, "--no-progress"]) == 0
    assert out.stat().st_size > 0


def test_a_sweep_file(marker, tmp_path, capsys):
    sweep = yaml.safe_load(open("configs/sweeps/tiny.yaml"))
    sweep["data"]["source"] = _command(marker)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    assert main(["sweep", "--config", str(path), f"out_dir={tmp_path / 'out'}"]) == 2
    _refused(capsys, f"{path}: data.source")


def test_an_ablation_config(marker, tmp_path, capsys):
    ablation = yaml.safe_load(open("configs/experiments/paper_ablation.yaml"))
    ablation["objectives"][0]["overrides"] = [f"data.path={_command(marker)}"]
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(ablation))
    assert main(["ablation", "--config", str(path), f"out_dir={tmp_path / 'out'}"]) == 2
    _refused(capsys, f"{path}: objectives[0].overrides[0]")


def test_an_eval_suite(crafted_run, marker, tmp_path, capsys):
    suite = yaml.safe_load(open("configs/evals/quick.yaml"))
    suite["tasks"] = [{"name": "z", "kind": "zeroshot", "path": _command(marker), "split": "test"}]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert main(["eval", "--checkpoint", str(crafted_run), "--suite", str(path), "--out", "o"]) == 2
    _refused(capsys, f"{path}: tasks[0].path")


def test_a_pipe_on_the_command_line_runs_only_with_allow_pipe(
    marker, tmp_path, capsys, monkeypatch
):
    data = tmp_path / "ds"
    write_dataset(data, {"train": [full_frame(i, natoms=4) for i in range(8)]}, containers=("wds",))
    location = f"pipe:cat {data}/manifest.json"
    assert main(["data", "stats", location.replace("/manifest.json", "")]) == 2
    assert (
        "runs a program (pipe:); it is honoured only on your own command line with --allow-pipe"
        in (capsys.readouterr().err)
    )
    # granted: the dataset's manifest and shards stream through the command (cat of the local files)
    base = f"pipe:cat {data}/{{path}}"
    assert main(["--allow-pipe", "data", "stats", base]) == 0
    assert os.environ[GRANTED_ENV] == "[]"  # the grant ends with the command
    monkeypatch.setenv(ALLOW_ENV, "1")  # the environment variable opts in the same way
    assert main(["data", "stats", base]) == 0


def test_a_manifest(marker, tmp_path, capsys):
    """A shard path in a manifest is a relative file name, never a command: read locally it is a file that is not
    there; joined to a URL base it is refused as not a plain relative path."""
    data = tmp_path / "ds"
    write_dataset(data, {"train": [full_frame(i, natoms=4) for i in range(8)]}, containers=("wds",))
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["shards"][0]["path"] = _command(marker)
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert main(["data", "stats", str(data)]) == 2
    assert "error: " in capsys.readouterr().err
    args = ["--allow-pipe", "data", "stats", f"pipe:cat {data}/{{path}}"]
    assert main(args) == 2
    assert "from the manifest is not a plain relative path; refused" in capsys.readouterr().err


def test_a_relative_path_leaving_a_release_is_refused(tmp_path, capsys):
    release = write_tiny_release(tmp_path / "r")
    info = json.loads((release / "release.json").read_text())
    info["pretraining_manifest"] = {"path": "../../../etc", "sha256": "ab" * 32}
    (release / "release.json").write_text(json.dumps(info))
    write_checksums(release)
    args = ["eval", "--checkpoint", str(release), "--suite", "configs/evals/quick.yaml"]
    assert main([*args, "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert f"error: {release}/release.json: pretraining_manifest.path: '../../../etc' leaves" in err
