"""Multi-fidelity energies: two sources of the same structures where source B = source A + a constant per element
(another DFT setting). Prep tags each input's frames, fits references per source; a model with a reference per
source fits both, predicts the same forces and stress for either, and refuses a source it does not know."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.pipeline import run_prep

from foundation.calculator import FoundationCalculator
from foundation.data.ase_convert import atoms_from_frame, frame_from_atoms
from foundation.data.batch import collate_frames
from foundation.data.dataset import open_dataset
from foundation.data.schema import Frame
from foundation.models.loading import load_potential
from foundation.train.config import load_train_config
from foundation.train.runner import run_training
from tests.train.helpers import tiny_config

OFFSET = {
    13: 1.3,
    28: -0.9,
    29: 0.7,
}  # eV per atom of Al, Ni, Cu in source B (another DFT setting's references)


def offset_of(numbers) -> float:
    return float(sum(OFFSET[int(z)] for z in numbers))


def emt_frames(count: int, seed: int = 0) -> list[Frame]:
    """Rattled, strained 8-atom Cu/Ni/Al fcc cells labelled by ASE's EMT (energy, forces, stress): real physics on
    three elements, so element references generalise from a few dozen frames."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 2))
        atoms.numbers = rng.choice([13, 28, 29], size=len(atoms))
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.normal(0, 0.01, (3, 3))), scale_atoms=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        frames.append(frame_from_atoms(atoms, frame_id=f"emt{i}", structure_id=f"emt{i}"))
    return frames


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    """80 EMT frames written twice: a.xyz (source A, the EMT energies) and b.xyz (source B, + offsets), prepared
    together with input_sources; the manifest fits references per source."""
    tmp = tmp_path_factory.mktemp("sources")
    frames = emt_frames(80)
    a, b = [], []
    for frame in frames:
        for name, energy, out in (
            ("A", frame.energy, a),
            ("B", frame.energy + offset_of(frame.numbers), b),
        ):
            atoms = atoms_from_frame(frame)
            atoms.calc = SinglePointCalculator(
                atoms,
                energy=energy,
                forces=frame.forces,
                stress=full_3x3_to_voigt_6_stress(frame.stress),
            )
            atoms.info.update(frame_id=f"{frame.frame_id}:{name}", structure_id=frame.structure_id)
            out.append(atoms)
    ase.io.write(tmp / "a.xyz", a, format="extxyz")
    ase.io.write(tmp / "b.xyz", b, format="extxyz")
    config = PrepConfig(
        inputs=[str(tmp / "a.xyz"), str(tmp / "b.xyz")],
        out=str(tmp / "data"),
        container="both",
        shard_size=32,
        split={"train": 0.8, "val": 0.2},
        progress=False,
        input_sources={str(tmp / "a.xyz"): "A", str(tmp / "b.xyz"): "B"},
    )
    run_prep(config)
    return tmp / "data"


def test_prep_tags_each_input_and_fits_references_per_source(two_sources):
    frames = list(open_dataset(two_sources, "train", "lmdb"))
    assert {f.source for f in frames} == {"A", "B"}
    assert all(f.frame_id.endswith(":" + f.source) for f in frames)
    assert len(frames) % 2 == 0  # a geometry of two sources is two frames, not a duplicate
    from foundation.data.manifest import Manifest

    stats = Manifest.load(two_sources).statistics
    assert stats["frames_by_source"] == {"A": len(frames) // 2, "B": len(frames) // 2}
    refs = stats["element_references_by_source"]
    for frame in (
        frames
    ):  # B = A + offsets: the fitted references differ by the offsets on every composition seen
        difference = sum(
            refs["B"][chemical_symbols[z]] - refs["A"][chemical_symbols[z]] for z in frame.numbers
        )
        assert difference == pytest.approx(offset_of(frame.numbers), abs=1e-6)


@pytest.fixture(scope="module")
def trained(two_sources, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "multi"
    cfg = tiny_config(
        two_sources,
        run_dir,
        data={"fit_check_frames": 10_000},
        train={
            "max_steps": 6,
            "log_every": 3,
            "val_every": 6,
            "checkpoint_every": 6,
            "progress": False,
        },
    )
    summary = run_training(load_train_config(cfg))
    return summary, run_dir


def test_per_source_references_fit_both_sources(trained, two_sources, tmp_path):
    summary, run_dir = trained
    val = summary["val"]
    assert {"val/energy_mae/A", "val/energy_mae/B", "val/forces_mae/A", "val/forces_mae/B"} <= set(
        val
    )
    # one reference for both sources: the offsets (~1 eV/atom) land in the energy error
    merged = tiny_config(
        two_sources,
        tmp_path / "merged",
        train={
            "max_steps": 6,
            "log_every": 3,
            "val_every": 6,
            "checkpoint_every": 6,
            "progress": False,
        },
    )
    merged["data"]["sources"] = [{"path": str(two_sources), "source": "one"}]
    with pytest.raises(Exception, match="can only tag a dataset of one source"):
        run_training(load_train_config(merged))
    # the per-source model's energy errors do not carry the offsets: both sources are fitted alike
    assert abs(val["val/energy_mae/A"] - val["val/energy_mae/B"]) < 0.01
    assert (
        max(val["val/energy_mae/A"], val["val/energy_mae/B"]) < 0.1
    )  # eV/atom; the offsets are ~1 eV/atom
    model = load_potential(run_dir / "last")
    assert model.sources == ("A", "B") and model.config.heads.energy_source() in ("A", "B")


def test_each_sources_errors_sit_beside_its_trivial_baseline(trained, two_sources):
    val = trained[0]["val"]
    for prefix, split in (
        ("val/", "val"),
        ("fit/", "train"),
    ):  # fit/: the fit check's training frames (all here)
        frames = list(open_dataset(two_sources, split))
        for name in ("A", "B"):  # zero forces: the mean |force component| of the source's frames
            forces = np.concatenate([np.abs(f.forces).ravel() for f in frames if f.source == name])
            assert val[f"{prefix}forces_baseline_mae/{name}"] == pytest.approx(forces.mean())
    # B's energies are A's plus per-element offsets, which B's own references absorb: the same baseline error (a
    # baseline from one table for both sources would be ~1 eV/atom off for B)
    assert val["val/energy_baseline_mae/A"] == pytest.approx(
        val["val/energy_baseline_mae/B"], abs=1e-6
    )
    assert val["val/energy_baseline_mae/A"] > 0


def test_forces_and_stress_are_identical_across_sources(trained):
    _, run_dir = trained
    model = load_potential(run_dir / "last").double()
    frames = emt_frames(6, seed=1)
    outputs = {}
    for name in ("A", "B"):
        for f in frames:
            f.source = name
        batch = collate_frames(frames, model.cutoff, dtype=torch.float64, sources=model.sources)
        outputs[name] = model(batch)
    assert torch.equal(outputs["A"]["forces"], outputs["B"]["forces"])
    assert torch.equal(outputs["A"]["stress"], outputs["B"]["stress"])
    head = model.energy_head
    table = head.source_references + head.source_offsets.detach().double()
    expected = torch.tensor(
        [float((table[1] - table[0])[torch.from_numpy(f.numbers)].sum()) for f in frames],
        dtype=torch.float64,
    )
    torch.testing.assert_close(
        outputs["B"]["energy"] - outputs["A"]["energy"], expected, rtol=0, atol=1e-8
    )


def test_calculator_chooses_a_source_and_refuses_an_unknown_one(trained):
    _, run_dir = trained
    model = load_potential(run_dir / "last")
    atoms = atoms_from_frame(emt_frames(1, seed=2)[0])
    energies = {}
    for name in ("A", "B"):
        calc = FoundationCalculator(model, source=name)
        energies[name] = calc.get_potential_energy(atoms.copy())
    default = FoundationCalculator(model)
    assert default.source == model.config.heads.energy_source()
    assert default.get_potential_energy(atoms.copy()) == pytest.approx(
        energies[default.source], abs=1e-9
    )
    assert energies["B"] - energies["A"] == pytest.approx(offset_of(atoms.numbers), abs=0.05)
    with pytest.raises(ValueError, match="unknown source 'C'.*\\['A', 'B'\\]"):
        FoundationCalculator(model, source="C")
    frames = emt_frames(1)
    frames[0].source = "C"
    with pytest.raises(ValueError, match="source 'C'"):
        collate_frames(frames, model.cutoff, sources=model.sources)


def test_a_release_states_its_energy_source(trained, tmp_path):
    from foundation.evals.release import make_release

    from foundation.calculator import load_calculator

    _, run_dir = trained
    out = make_release(run_dir, tmp_path / "release", which="last")
    info = json.loads((out / "release.json").read_text())
    assert info["sources"] == ["A", "B"] and info["energy_source"] in ("A", "B")
    assert f"the data source `{info['energy_source']}`" in (out / "README.md").read_text()
    assert load_calculator(out).source == info["energy_source"]
    with pytest.raises(ValueError, match="unknown source 'PBE'"):
        load_calculator(out, source="PBE")


def test_fine_tuning_a_multi_source_parent_is_refused(trained, two_sources, tmp_path):
    from foundation.config import ConfigError

    _, run_dir = trained
    cfg = tiny_config(
        two_sources, tmp_path / "ft", finetune={"parent": str(run_dir), "parent_which": "last"}
    )
    with pytest.raises(
        ConfigError, match=r"energy reference per source \['A', 'B'\] is not supported yet"
    ):
        run_training(load_train_config(cfg))


def test_a_source_without_an_element_cannot_predict_it():
    """Source A's frames held no Al: its energy of an Al-bearing cell is refused, naming the sources that can."""
    from foundation.models import build_potential

    config = {
        "backbone": {
            "name": "schnet",
            "hidden": 16,
            "num_filters": 16,
            "layers": 2,
            "cutoff": 4.0,
            "num_radial": 8,
            "max_neighbours": None,
        },
        "heads": {"sources": ["A", "B"]},
    }
    potential = build_potential(config)
    potential.set_normalization(
        source_references={"A": {"Cu": -3.0}, "B": {"Cu": -4.0, "Al": -2.5}}
    )
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.numbers[0] = 13
    assert np.isfinite(FoundationCalculator(potential, source="B").get_potential_energy(atoms))
    with pytest.raises(ValueError, match=r"source 'A' has no energy reference for Al .*\['B'\]"):
        FoundationCalculator(potential, source="A").get_potential_energy(atoms)
