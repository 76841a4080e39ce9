"""Release bundles: checksums, the round trip run -> release -> calculator (same E/F/S as the training-time model
on held-out frames), relaxations of real structures with the released calculator, and refusal of tampered files."""

import json

import numpy as np
import pytest
from foundation.evals.release import make_release

from foundation.cli.main import main
from foundation.release import ReleaseError, read_checksums, verify_checksums, write_checksums
from tests.conftest import FIXTURES


def test_checksums_round_trip_and_tampering(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00\x01")
    write_checksums(tmp_path)
    assert set(read_checksums(tmp_path)) == {"a.txt", "sub/b.bin"}
    with pytest.raises(ReleaseError, match="model.safetensors: required file missing"):
        verify_checksums(tmp_path)
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00\x02")
    with pytest.raises(ReleaseError, match="sub/b.bin: sha256 mismatch"):
        verify_checksums(tmp_path)
    (tmp_path / "SHA256SUMS").write_text("nonsense\n")
    with pytest.raises(ReleaseError, match="malformed"):
        verify_checksums(tmp_path)


@pytest.fixture(scope="module")
def release(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "tiny-v1"
    assert main(["release", str(tiny_run), "--out", str(out), "--name", "tiny"]) == 0
    return out


def test_release_bundle_contents(release, tiny_run):
    from foundation.files import sha256_file

    files = verify_checksums(release)
    assert {"model.safetensors", "model.json", "release.json", "config.yaml", "README.md"} <= set(
        files
    )
    info = json.loads((release / "release.json").read_text())
    assert info["weights_sha256"] == sha256_file(tiny_run / "best" / "model.safetensors")
    assert info["pretraining_manifest"]["sha256"] == sha256_file(
        tiny_run.parent / "data" / "manifest.json"
    )
    assert info["element_references"] and info["normalization"]["scale"] == pytest.approx(0.1)
    card = (release / "README.md").read_text()
    for section in ("## Data", "## Objective", "## Intended use", "## Limits", "## License"):
        assert section in card
    with pytest.raises(FileExistsError):
        make_release(tiny_run, release)


def test_released_calculator_matches_training_time_model(release, tiny_run):
    import torch

    from foundation import load_calculator
    from foundation.data.ase_convert import atoms_from_frame
    from foundation.data.batch import collate_frames
    from foundation.data.dataset import open_dataset
    from foundation.models.loading import load_potential

    model = load_potential(tiny_run, "best")
    calc = load_calculator(release)
    held_out = list(open_dataset(tiny_run.parent / "data", split="test"))[:6]
    for frame in held_out:
        ref = model(collate_frames([frame], model.cutoff, dtype=torch.float32))
        atoms = atoms_from_frame(frame)
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(
            float(ref["energy"][0]), rel=1e-6, abs=1e-6
        )
        np.testing.assert_allclose(
            atoms.get_forces(), ref["forces"].double().numpy(), rtol=1e-5, atol=1e-6
        )
        stress = atoms.get_stress(voigt=False)
        np.testing.assert_allclose(stress, ref["stress"][0].double().numpy(), rtol=1e-5, atol=1e-7)


def test_relax_real_structures_with_the_released_calculator(release):
    from ase.collections import dcdft
    from ase.filters import FrechetCellFilter
    from ase.io import read
    from ase.optimize import FIRE

    from foundation import load_calculator

    calc = load_calculator(release)
    structures = [
        dcdft["Cu"],
        dcdft["Si"],
        read(FIXTURES / "dft" / "mptrj-sample.xyz", index=77),
    ]  # 44 atoms
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = calc
        e0 = atoms.get_potential_energy()
        opt = FIRE(FrechetCellFilter(atoms), logfile=None)
        converged = opt.run(fmax=0.05, steps=300)
        assert converged, f"{atoms.get_chemical_formula()} did not relax in 300 FIRE steps"
        assert atoms.get_potential_energy() <= e0 + 1e-6
        assert np.abs(atoms.get_forces()).max() < 0.05
        assert (
            np.abs(atoms.get_stress()).max() * atoms.get_volume() < 0.05 * 3
        )  # cell forces small too


def test_tampered_release_is_refused(release, tmp_path):
    import shutil

    from foundation import load_calculator

    for name, edit in (
        (
            "model.safetensors",
            lambda p: p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1])),
        ),
        ("model.json", lambda p: p.write_text(p.read_text().replace("schnet", "cgcnn"))),
        ("extra.py", lambda p: p.write_text("print('hi')")),
    ):
        copy = tmp_path / name
        shutil.copytree(release, copy)
        edit(copy / name)
        with pytest.raises(ReleaseError, match=name):
            load_calculator(copy)


def test_eval_of_a_release_and_a_release_with_its_report(release, tiny_run, tmp_path):
    import yaml

    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "zs",
                "tasks": [
                    {"name": "frames", "kind": "zeroshot", "split": "val"},
                    {"name": "eos", "kind": "dcdft_eos", "elements": ["Cu"]},
                ],
            }
        )
    )
    out = tmp_path / "eval"
    assert (
        main(["eval", "--checkpoint", str(release), "--suite", str(suite), "--out", str(out)]) == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["checkpoint"]["kind"] == "release"
    assert (
        results["checkpoint"]["pretraining_manifest"]["sha256"] is not None
    )  # zero-shot found the data
    assert results["tasks"][0]["units"][0]["n_frames"] == 10

    bundle = tmp_path / "with-report"
    make_release(tiny_run, bundle, report=out)
    files = verify_checksums(bundle)
    assert {"report/results.json", "report/report.html", "report/report.md"} <= set(files)
    assert "## Downstream evaluation" in (bundle / "README.md").read_text()
    other = tmp_path / "other-report"
    (other).mkdir()
    body = json.loads((out / "results.json").read_text())
    body["checkpoint"]["sha256"] = "0" * 64
    for name in ("report.md", "report.html"):
        (other / name).write_text((out / name).read_text())
    (other / "results.json").write_text(json.dumps(body))
    with pytest.raises(ValueError, match="evaluated other weights"):
        make_release(tiny_run, tmp_path / "mismatch", report=other)
