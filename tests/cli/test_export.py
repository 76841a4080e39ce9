"""`foundation export`: a release written as TorchScript, loaded by a separate Python process that imports only torch
(the foundation package is made unimportable there), reproduces the release calculator's energies, forces and
stress; names resolve through FOUNDATION_MODELS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk, fcc111

from foundation import load_calculator
from foundation.cli.main import main
from foundation.export import read_metadata
from tests.release_helpers import write_tiny_release

# Runs with `python -I` (no PYTHONPATH, no user site, cwd not on the path) and a finder that refuses `foundation`,
# so an editable install of the project cannot be what answers.
TORCH_ONLY = r"""
import json, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "foundation" or name.startswith("foundation."):
            raise ImportError("foundation is not available in this process")
        return None

sys.meta_path.insert(0, Refuse())
import torch

model = torch.jit.load(sys.argv[1])
results = []
for s in json.load(open(sys.argv[2])):
    out = model(torch.tensor(s["numbers"]), torch.tensor(s["positions"], dtype=torch.float64),
                torch.tensor(s["cell"], dtype=torch.float64), torch.tensor(s["pbc"]))
    results.append({k: v.tolist() for k, v in out.items()})
assert not [m for m in sys.modules if m.split(".")[0] == "foundation"]
json.dump(results, open(sys.argv[3], "w"))
"""


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_tiny_release(tmp_path_factory.mktemp("models"), name="tiny")


def _structures():
    crystal = bulk("NaCl", "rocksalt", a=5.5).repeat((2, 2, 2))
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=5.0)
    for k, atoms in enumerate((crystal, slab)):
        atoms.rattle(0.08, seed=k)
    return [crystal, slab]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exported_file_reproduces_the_release_in_a_torch_only_process(
    release, tmp_path, monkeypatch, dtype
):
    monkeypatch.setenv("FOUNDATION_MODELS", str(release.parent))
    out = tmp_path / "tiny.pt"
    assert main(["export", "tiny", "--out", str(out), "--dtype", dtype]) == 0  # by name
    meta = read_metadata(out)
    assert meta["release"] == "tiny" and meta["cutoff"] == 4.0 and meta["dtype"] == dtype
    assert (
        meta["weights_sha256"]
        == json.loads((release / "release.json").read_text())["weights_sha256"]
    )

    structures = _structures()
    (tmp_path / "in.json").write_text(
        json.dumps(
            [
                {
                    "numbers": a.numbers.tolist(),
                    "positions": a.positions.tolist(),
                    "cell": np.asarray(a.cell[:]).tolist(),
                    "pbc": a.pbc.tolist(),
                }
                for a in structures
            ]
        )
    )
    (tmp_path / "script.py").write_text(TORCH_ONLY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["OMP_NUM_THREADS"] = "1"
    subprocess.run(
        [
            sys.executable,
            "-I",
            str(tmp_path / "script.py"),
            str(out),
            str(tmp_path / "in.json"),
            str(tmp_path / "out.json"),
        ],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=300,
    )
    results = json.loads((tmp_path / "out.json").read_text())

    calc = load_calculator(release)
    tolerance = dict(
        rtol=1e-4, atol=1e-7
    )  # the release calculator runs in float32; forces here are ~1e-4 eV/A
    for atoms, result in zip(structures, results):
        atoms.calc = calc
        assert result["energy"] == pytest.approx(atoms.get_potential_energy(), rel=1e-6)
        np.testing.assert_allclose(result["forces"], atoms.get_forces(), **tolerance)
        np.testing.assert_allclose(result["energies"], calc.results["energies"], **tolerance)
        if atoms.pbc.all():
            np.testing.assert_allclose(
                result["stress"], atoms.get_stress(voigt=False), rtol=1e-4, atol=1e-9
            )
        assert np.abs(atoms.get_forces()).max() > 1e-5  # not a comparison of zeros


def test_an_unknown_model_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FOUNDATION_MODELS", str(tmp_path))
    assert main(["export", "nope", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model 'nope'") and "\n" not in err and "FOUNDATION_MODELS" in err
