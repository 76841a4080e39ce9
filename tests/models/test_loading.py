"""foundation/models/loading.py: what a path or name is (decided once), and model files that cannot be loaded:
a model.json beyond the size bounds (refused under a capped address space, for every command that loads a
model), a bad safetensors header, a tensor of the wrong shape, `export` of a non-release: one line, exit 2."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from safetensors.numpy import save_file
from safetensors.torch import load_file

import foundation
from foundation.cli.main import main
from foundation.models.loading import (
    RELEASE,
    RUN,
    ModelFileError,
    ModelNotFound,
    load_potential,
    locate_model,
)
from foundation.release import write_checksums
from tests.memory_limit import foundation_capped, run_capped
from tests.release_helpers import write_tiny_release

OVERSIZED = {
    "hidden 16384": ("hidden", 16384, "backbone.hidden: 16384 is more than 8192"),
    "layers 1000000": ("layers", 1000000, "backbone.layers: 1000000 is more than 64"),
    "cutoff 100": ("cutoff", 100, "backbone.cutoff: 100.0 A is beyond"),
    "hidden 1e9": ("hidden", 1e9, "backbone.hidden"),
    "cutoff 1e6": ("cutoff", 1e6, "backbone.cutoff: 1000000.0 A is beyond"),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(release, run directory, a 16-atom structure file)."""
    root = tmp_path_factory.mktemp("loading")
    release = write_tiny_release(root, name="tiny")
    structure = root / "nacl16.extxyz"
    (bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (1, 1, 2)).write(structure)
    return release, root / "run", structure


def _republished(release, target, edit):
    """A copy of `release` changed by `edit(copy)` with its SHA256SUMS remade, as any publisher can."""
    shutil.copytree(release, target)
    edit(target)
    (target / "SHA256SUMS").unlink()
    write_checksums(target)
    return target


def _with_backbone(release, target, key, value):
    def edit(directory):
        meta = json.loads((directory / "model.json").read_text())
        meta["model"]["backbone"][key] = value
        (directory / "model.json").write_text(json.dumps(meta))

    return _republished(release, target, edit)


def _one_line(done, *needles):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    assert all(needle in lines[0] for needle in needles), lines[0]
    return lines[0]


def test_release_run_export_and_name_are_told_apart(tiny, tmp_path, monkeypatch):
    release, run, _ = tiny
    assert (locate_model(release).kind, locate_model(release).directory) == (RELEASE, release)
    assert (locate_model(run).kind, locate_model(run).directory) == (RUN, run / "best")
    assert locate_model(run, "last").directory == run / "last"
    assert locate_model(run / "last").directory == run / "last"  # an export itself
    shutil.copytree(run, tmp_path / "only-last", ignore=shutil.ignore_patterns("best"))
    assert locate_model(tmp_path / "only-last").directory.name == "last"  # no best/ yet
    monkeypatch.setenv("FOUNDATION_MODELS", str(release.parent))
    assert locate_model("tiny").path == release and locate_model("tiny").name == "tiny"
    with pytest.raises(ModelNotFound, match="neither a release directory .* nor a training run"):
        locate_model(tmp_path)
    with pytest.raises(ModelNotFound, match="a training run directory .*, not a release"):
        locate_model(run, kinds=(RELEASE,))
    with pytest.raises(ModelNotFound, match="no release of that name .* known: tiny"):
        locate_model("run")  # a run directory in the model directory is no model name


def test_a_run_and_its_release_load_the_same_weights(tiny):
    release, run, _ = tiny
    from_run, from_release = load_potential(run), load_potential(release)
    assert not from_run.training and from_run.dtype == from_release.dtype
    for (key, a), b in zip(from_run.state_dict().items(), from_release.state_dict().values()):
        assert a.equal(b), key
    calc = foundation.load_calculator(run, which="last")
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [2.8, 0, 0]])
    atoms.calc = calc
    assert np.isfinite(atoms.get_potential_energy())


@pytest.mark.parametrize("case", OVERSIZED)
def test_an_oversized_model_json_is_refused_by_predict_under_a_memory_cap(tiny, tmp_path, case):
    release, _, structure = tiny
    key, value, message = OVERSIZED[case]
    bad = _with_backbone(release, tmp_path / "bad", key, value)
    done = foundation_capped(
        ["predict", str(bad), str(structure), "--out", str(tmp_path / "o.xyz")]
    )
    _one_line(done, f"{bad / 'model.json'}: ", message)
    assert not (tmp_path / "o.xyz").exists()


def test_hidden_16384_is_refused_by_every_loader_under_a_memory_cap(tiny, tmp_path):
    release, _, _ = tiny
    bad = _with_backbone(release, tmp_path / "bad", "hidden", 16384)
    message = "backbone.hidden: 16384 is more than 8192"
    _one_line(foundation_capped(["export", str(bad), "--out", str(tmp_path / "x.pt")]), message)
    finetune = [
        "finetune",
        "--from",
        str(bad),
        f"data.path={tmp_path}",
        f"run_dir={tmp_path / 'ft'}",
    ]
    _one_line(foundation_capped(finetune), f"{bad / 'model.json'}: ", message)
    evaluate = ["eval", "--checkpoint", str(bad), "--suite", "configs/evals/quick.yaml"]
    _one_line(foundation_capped([*evaluate, "--out", str(tmp_path / "ev")]), message)
    code = "import foundation, sys; foundation.load_calculator(sys.argv[1])"
    done = run_capped(["-c", code, str(bad)])
    assert done.returncode == 1 and "ModelFileError" in done.stderr, done.stderr[-2000:]
    assert f"{bad / 'model.json'}: {message}" in done.stderr
    assert "MemoryError" not in done.stderr


@pytest.mark.parametrize(
    "header",
    [
        b"\xff" * 16,  # a header length of 2**64 - 1
        struct.pack("<Q", 12) + b"{not json!!}",
        struct.pack("<Q", 60)
        + b'{"w": {"dtype": "F32", "shape": [1000000000], "data_offsets": [0, 4]}}',
    ],
)
def test_a_bad_safetensors_header_is_one_line(tiny, tmp_path, header):
    release, _, structure = tiny

    def edit(directory):
        weights = (directory / "model.safetensors").read_bytes()
        (directory / "model.safetensors").write_bytes(header + weights[len(header) :])

    bad = _republished(release, tmp_path / "bad", edit)
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        load_potential(bad)
    done = foundation_capped(["predict", str(bad), str(structure), "--out", str(tmp_path / "o")])
    _one_line(done, f"{bad / 'model.safetensors'}: not a readable safetensors file")


def test_a_tensor_of_the_wrong_shape_is_one_line_before_it_is_read(tiny, tmp_path):
    release, _, structure = tiny

    def edit(directory):
        tensors = {k: v.numpy() for k, v in load_file(directory / "model.safetensors").items()}
        key = next(k for k in tensors if k.endswith("embedding.weight"))
        tensors[key] = np.zeros((119, 17), dtype=np.float32)
        save_file(tensors, directory / "model.safetensors")

    bad = _republished(release, tmp_path / "bad", edit)
    with pytest.raises(
        ModelFileError, match=r"embedding.weight is \[119, 17\], the model's is \[119, 16\]"
    ):
        load_potential(bad)
    done = foundation_capped(["predict", str(bad), str(structure), "--out", str(tmp_path / "o")])
    _one_line(done, "model.safetensors: tensors do not fit", "[119, 17]")

    def grown(directory):  # more values than the model holds: refused before any tensor is read
        tensors = {k: v.numpy() for k, v in load_file(directory / "model.safetensors").items()}
        tensors["extra"] = np.zeros(10_000_000, dtype=np.float32)
        save_file(tensors, directory / "model.safetensors")

    with pytest.raises(ModelFileError, match="holds .* values, the model of .* has"):
        load_potential(_republished(release, tmp_path / "grown", grown))


def test_export_of_a_non_release_is_one_line(tiny, tmp_path, capsys):
    release, run, _ = tiny
    for target in (run, release / "README.md", tmp_path / "missing"):
        assert main(["export", str(target), "--out", str(tmp_path / "x.pt")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert not (tmp_path / "x.pt").exists()
