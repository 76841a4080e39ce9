"""Label statistics of the kept training frames, streamed from chunk summaries (two passes, no records).

- element_references {symbol: eV}: least squares of the per-atom energy E/N on the composition fractions n_Z/N
  (every frame weighs the same, whatever its size; a fit of total energies would let the largest cells decide),
  minimum-norm when compositions are collinear; elements absent from the training frames get no reference.
- element_references_by_source {source: {symbol: eV}} and energy_per_atom_std_by_source: the same fit within
  each source (data set + DFT settings sit at different energy offsets), when frames carry more than one source.
- energy_per_atom_mean/std: (E - sum_Z n_Z ref_Z) / N after the references.
- force_rms: sqrt(mean F_i^2) over all force components; stress_rms likewise over the 9 stress components.
- mean_neighbours: ordered neighbour pairs within `neighbour_cutoff` per atom, over the sampled frames.
- atoms_per_frame_mean/std/min/max.
- frames_by_source {source: frames}: the kept frames of each source tag (one entry when they share one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from ase.data import chemical_symbols

from foundation.data.schema import MAX_ATOMIC_NUMBER

Batches = Callable[
    [], Iterable[tuple[dict[str, np.ndarray], np.ndarray]]
]  # (summary, keep mask) pairs


def composition_matrix(summary: dict[str, np.ndarray]) -> np.ndarray:
    """Dense (frames, 119) matrix of atom counts per element from a summary's CSR composition."""
    lengths = summary["comp_len"]
    rows = np.repeat(np.arange(len(lengths)), lengths)
    out = np.zeros((len(lengths), MAX_ATOMIC_NUMBER + 1))
    out[rows, summary["comp_z"]] = summary["comp_n"]
    return out


def _sources(summary: dict[str, np.ndarray]) -> np.ndarray:
    """Each frame's source ("" for chunk outputs staged before summaries recorded it)."""
    return (
        summary["source"]
        if "source" in summary
        else np.full(len(summary["natoms"]), "", dtype="<U1")
    )


def fit_element_references(batches: Batches, source: str | None = None) -> dict[int, float]:
    """{Z: reference energy} by least squares of per-atom energies on composition fractions, over the kept
    frames that have an energy (only those of `source` when given)."""
    gram = np.zeros((MAX_ATOMIC_NUMBER + 1, MAX_ATOMIC_NUMBER + 1))
    rhs = np.zeros(MAX_ATOMIC_NUMBER + 1)
    for summary, keep in batches():
        use = keep & np.isfinite(summary["energy"])
        if source is not None:
            use &= _sources(summary) == source
        if not use.any():
            continue
        n = summary["natoms"][use].astype(np.float64)
        a = composition_matrix(summary)[use] / n[:, None]
        gram += a.T @ a
        rhs += a.T @ (summary["energy"][use] / n)
    present = np.flatnonzero(np.diag(gram) > 0)
    if present.size == 0:
        return {}
    solution = np.linalg.lstsq(gram[np.ix_(present, present)], rhs[present], rcond=None)[0]
    return {int(z): float(e) for z, e in zip(present, solution)}


def reference_vector(refs: dict[int, float]) -> np.ndarray:
    out = np.zeros(MAX_ATOMIC_NUMBER + 1)
    for z, e in refs.items():
        out[z] = e
    return out


def per_atom_residuals(
    summary: dict[str, np.ndarray], refs: np.ndarray, by_source: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """(E - sum_Z n_Z ref_Z) / N of every frame of a summary (nan without an energy), with its source's
    references when `by_source` has them, else `refs`."""
    comp = composition_matrix(summary)
    baseline = comp @ refs
    if by_source:
        sources = _sources(summary)
        for name, vector in by_source.items():
            rows = sources == name
            if rows.any():
                baseline[rows] = comp[rows] @ vector
    return (summary["energy"] - baseline) / summary["natoms"]


def source_references(batches: Batches) -> dict[str, dict[int, float]]:
    """{source: {Z: eV}} fitted within each source, when the kept frames carry more than one source."""
    names: set[str] = set()
    for summary, keep in batches():
        names.update(np.unique(_sources(summary)[keep]).tolist())
    if len(names) < 2:
        return {}
    return {name: fit_element_references(batches, source=name) for name in sorted(names)}


class _Moments:
    """Count, mean, spread, min and max of a stream of arrays (Chan et al.'s pairwise update: memory O(1))."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2, self.min, self.max, self.total = 0, 0.0, 0.0, None, None, 0.0

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        n, mean = values.size, float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        delta, total = mean - self.mean, self.n + n
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n, self.total = total, self.total + float(values.sum())
        low, high = values.min().item(), values.max().item()
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)

    def std(self) -> float | None:
        return float(np.sqrt(self.m2 / self.n)) if self.n else None


def compute_statistics(
    batches: Batches, neighbour_cutoff: float
) -> tuple[dict[str, float], dict[str, float]]:
    """(statistics, element_references by symbol) of the kept frames that `batches` yields, in one streaming pass
    after the reference fits (memory does not grow with the number of frames)."""
    refs = fit_element_references(batches)
    ref_vector = reference_vector(refs)
    by_source = source_references(batches)
    source_vectors = {name: reference_vector(r) for name, r in by_source.items()}
    source_residuals = {name: _Moments() for name in by_source}
    residuals, natoms = _Moments(), _Moments()
    frames_by_source: dict[str, int] = {}
    sums = dict.fromkeys(
        ("force_sq", "force_n", "stress_sq", "stress_n", "neighbours", "neighbour_atoms"), 0.0
    )
    for summary, keep in batches():
        n = summary["natoms"][keep]
        natoms.add(n.astype(np.float64))
        names, counts = np.unique(_sources(summary)[keep], return_counts=True)
        for name, count in zip(names.tolist(), counts.tolist()):
            frames_by_source[name] = frames_by_source.get(name, 0) + count
        energy = summary["energy"][keep]
        has = np.isfinite(energy)
        residuals.add(per_atom_residuals(summary, ref_vector)[keep][has])
        if by_source:
            own = per_atom_residuals(summary, ref_vector, source_vectors)[keep]
            sources = _sources(summary)[keep]
            for name in by_source:
                source_residuals[name].add(own[has & (sources == name)])
        for key in ("force_sq", "force_n", "stress_sq", "stress_n"):
            sums[key] += float(summary[key][keep].sum())
        sampled = summary["neighbours"][keep] >= 0
        sums["neighbours"] += float(summary["neighbours"][keep][sampled].sum())
        sums["neighbour_atoms"] += float(n[sampled].sum())
    stats = {
        "num_frames": natoms.n,
        "num_atoms": int(round(natoms.total)),
        "energy_per_atom_mean": residuals.mean if residuals.n else None,
        "energy_per_atom_std": residuals.std(),
        "force_rms": float(np.sqrt(sums["force_sq"] / sums["force_n"]))
        if sums["force_n"]
        else None,
        "stress_rms": float(np.sqrt(sums["stress_sq"] / sums["stress_n"]))
        if sums["stress_n"]
        else None,
        "mean_neighbours": sums["neighbours"] / sums["neighbour_atoms"]
        if sums["neighbour_atoms"]
        else None,
        "neighbour_cutoff": neighbour_cutoff,
        "neighbour_sampled_atoms": int(sums["neighbour_atoms"]),
        "atoms_per_frame_mean": natoms.mean if natoms.n else None,
        "atoms_per_frame_std": natoms.std(),
        "atoms_per_frame_min": int(natoms.min) if natoms.n else None,
        "atoms_per_frame_max": int(natoms.max) if natoms.n else None,
        "element_reference_fit": "least squares of per-atom energies on composition fractions",
        "frames_by_source": dict(sorted(frames_by_source.items())),
    }
    if by_source:
        stats["element_references_by_source"] = {
            name: {chemical_symbols[z]: e for z, e in sorted(r.items())}
            for name, r in by_source.items()
        }
        stats["energy_per_atom_std_by_source"] = {
            name: m.std() for name, m in source_residuals.items()
        }
    return stats, {chemical_symbols[z]: e for z, e in sorted(refs.items())}
