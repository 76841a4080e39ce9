"""Element reference energies: fitted on per-atom energies (every frame weighs the same), per source where frames
carry several; outlier energies quarantined against them at the merge."""

from __future__ import annotations

import json

import numpy as np
import pytest
from foundation.data_prep.label_stats import _Moments, compute_statistics, fit_element_references
from foundation.data_prep.pipeline import run_prep

from .helpers import prep_config

REFS = {8: -4.9, 26: -8.3, 29: -3.7}


def _summary(frames: list[tuple[dict[int, int], float, str]]) -> dict[str, np.ndarray]:
    """A chunk summary (the arrays the merge reads) from (composition, energy, source) triples."""
    comp_z = np.concatenate([np.array(sorted(c), dtype=np.int64) for c, _, _ in frames])
    comp_n = np.concatenate(
        [np.array([c[z] for z in sorted(c)], dtype=np.int64) for c, _, _ in frames]
    )
    natoms = np.array([sum(c.values()) for c, _, _ in frames])
    zeros = np.zeros(len(frames))
    return {
        "natoms": natoms,
        "energy": np.array([e for _, e, _ in frames]),
        "comp_z": comp_z,
        "comp_n": comp_n,
        "comp_len": np.array([len(c) for c, _, _ in frames]),
        "source": np.array([s for _, _, s in frames]),
        "force_sq": zeros,
        "force_n": zeros,
        "stress_sq": zeros,
        "stress_n": zeros,
        "neighbours": -np.ones(len(frames)),
    }


def _frames(rng, count: int, source: str = "a", offset: float = 0.0, noise: float = 0.05):
    out = []
    for _ in range(count):
        comp = {z: int(n) for z, n in zip(REFS, rng.integers(0, 5, size=3)) if n > 0} or {29: 1}
        natoms = sum(comp.values())
        energy = sum(REFS[z] * n for z, n in comp.items()) + natoms * (
            offset + rng.normal(0, noise)
        )
        out.append((comp, energy, source))
    return out


def test_references_fit_per_atom_energies():
    rng = np.random.default_rng(0)
    frames = _frames(rng, 60)
    big = {8: 300, 29: 300}  # one huge cell 2 eV/atom off: a total-energy fit would follow it
    frames.append((big, sum(REFS[z] * n for z, n in big.items()) + 600 * 2.0, "a"))
    summary = _summary(frames)
    keep = np.ones(len(frames), dtype=bool)
    refs = fit_element_references(lambda: [(summary, keep)])
    n = summary["natoms"].astype(float)
    rows = np.array([[c.get(z, 0) for z in sorted(REFS)] for c, _, _ in frames]) / n[:, None]
    expected = np.linalg.lstsq(rows, summary["energy"] / n, rcond=None)[0]
    assert [refs[z] for z in sorted(REFS)] == pytest.approx(expected.tolist(), abs=1e-9)
    assert max(abs(refs[z] - REFS[z]) for z in REFS) < 0.2  # the big cell counts as one frame of 61
    totals = np.array([[c.get(z, 0) for z in sorted(REFS)] for c, _, _ in frames], dtype=float)
    by_total = np.linalg.lstsq(totals, summary["energy"], rcond=None)[0]
    assert max(abs(by_total[i] - REFS[z]) for i, z in enumerate(sorted(REFS))) > 0.5


def test_references_per_source():
    rng = np.random.default_rng(1)
    summary = _summary(
        _frames(rng, 40, "dft", noise=0.01) + _frames(rng, 40, "teacher", offset=1.0, noise=0.01)
    )
    keep = np.ones(len(summary["natoms"]), dtype=bool)
    stats, refs = compute_statistics(lambda: [(summary, keep)], neighbour_cutoff=5.0)
    by_source = stats["element_references_by_source"]
    assert set(by_source) == {"dft", "teacher"}
    for symbol, z in (("O", 8), ("Fe", 26), ("Cu", 29)):
        assert by_source["dft"][symbol] == pytest.approx(REFS[z], abs=0.05)
        assert by_source["teacher"][symbol] - by_source["dft"][symbol] == pytest.approx(
            1.0, abs=0.05
        )
    assert max(stats["energy_per_atom_std_by_source"].values()) < 0.1 < stats["energy_per_atom_std"]
    single = _summary(_frames(rng, 10, "dft"))
    alone, _ = compute_statistics(lambda: [(single, np.ones(10, dtype=bool))], neighbour_cutoff=5.0)
    assert "element_references_by_source" not in alone  # one source: nothing more to say


def _write_cells(path, count: int, wild: int, rng) -> None:
    """`count` Cu/O/Fe cells labelled by the reference energies plus a little noise; frame `wild` 30 eV/atom off."""
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    frames = []
    for i in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 2))
        atoms.numbers = rng.choice([8, 26, 29], size=len(atoms))
        atoms.rattle(0.02, seed=i)
        energy = sum(REFS[int(z)] for z in atoms.numbers) + len(atoms) * (
            rng.normal(0, 0.05) + 30.0 * (i == wild)
        )
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((len(atoms), 3)))
        frames.append(atoms)
    write(path, frames, format="extxyz")


def test_energy_outliers_are_quarantined_with_their_reason(tmp_path):
    path = tmp_path / "frames.xyz"
    _write_cells(path, 40, wild=5, rng=np.random.default_rng(2))
    plain = run_prep(prep_config([path], tmp_path / "plain", split={"train": 1.0}))
    assert "energy_outlier" not in plain.manifest.quarantine["by_reason"]
    result = run_prep(
        prep_config([path], tmp_path / "out", split={"train": 1.0}, max_energy_residual=5.0)
    )
    assert result.manifest.quarantine["by_reason"] == {"energy_outlier": 1}
    line = json.loads((tmp_path / "out" / "quarantine.jsonl").read_text())
    assert (
        line["reason"] == "energy_outlier"
        and line["record"] == "5"
        and "eV/atom" in line["message"]
    )
    assert (
        result.manifest.statistics["energy_per_atom_std"]
        < 0.1
        < plain.manifest.statistics["energy_per_atom_std"]
    )
    refs = result.manifest.element_references
    assert refs["Cu"] == pytest.approx(REFS[29], abs=0.1) and refs["O"] == pytest.approx(
        REFS[8], abs=0.1
    )
    assert result.manifest.reader["options"]["max_energy_residual_eV_atom"] == 5.0


def test_streamed_statistics_equal_the_whole_array():
    rng = np.random.default_rng(3)
    values = rng.normal(
        1e3, 0.5, 10_001
    )  # a large mean beside a small spread: where a naive sum of squares fails
    moments = _Moments()
    for part in np.array_split(values, 37):
        moments.add(part)
    moments.add(np.zeros(0))
    assert moments.n == values.size and moments.mean == pytest.approx(values.mean(), rel=1e-12)
    assert moments.std() == pytest.approx(values.std(), rel=1e-9)
    assert (moments.min, moments.max) == (values.min(), values.max())
