"""ASE's dcdft collection: 71 elemental crystals with WIEN2k-PBE equilibrium volume and bulk modulus.
Zero-shot bulk moduli from an EOS fit with the potential, and the same B as a fine-tuning target."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator
from foundation.evals.eos import EosFitError, fit_bulk_modulus
from foundation.evals.metrics import regression_metrics
from foundation.evals.tasks.common import PropertyTask, kfold

from foundation.data.ase_convert import frame_from_atoms
from foundation.progress import progress_bar

PROPERTY = "bulk_modulus"


def dcdft_entries() -> list[tuple[str, Any, dict[str, float]]]:
    """(symbol, Atoms, reference data with wien2k_B in GPa and wien2k_volume in A^3/atom) of every crystal."""
    from ase.collections import dcdft

    return [(name, dcdft[name], dict(dcdft.data[name])) for name in dcdft.names]


def dcdft_source() -> str:
    """Where the reference values come from (they ship inside ASE, so its version identifies them)."""
    import ase

    return f"WIEN2k-PBE values shipped with ase {ase.__version__}"


def load_dcdft_task(num_folds: int = 5, fold_seed: int = 0) -> PropertyTask:
    """The 71 crystals with target `bulk_modulus` (WIEN2k, GPa) and shuffled k-fold splits."""
    frames = []
    for name, atoms, ref in dcdft_entries():
        frames.append(
            frame_from_atoms(
                atoms,
                frame_id=name,
                structure_id=name,
                source="ase.collections.dcdft",
                properties={PROPERTY: float(ref["wien2k_B"])},
            )
        )
    return PropertyTask(
        name="dcdft_bulk_modulus",
        property=PROPERTY,
        frames=frames,
        folds=kfold(len(frames), num_folds, fold_seed),
        unit="GPa",
        provenance={"ase.collections.dcdft": dcdft_source()},
    )


def zero_shot_bulk_moduli(
    calc: Calculator,
    *,
    strain: float = 0.06,
    points: int = 11,
    elements: list[str] | None = None,
    domain: set[str] | None = None,
) -> dict[str, Any]:
    """EOS-fit bulk modulus of each crystal with `calc` against WIEN2k. Failed fits are listed with reasons
    and left out of the metrics (never dropped silently). With `domain` (the elements of the pre-training data),
    crystals of other elements are not fitted: they are listed under "out_of_domain", not as failures."""
    rows, failures = [], []
    entries = [e for e in dcdft_entries() if elements is None or e[0] in elements]
    out_of_domain = sorted(
        e[0]
        for e in entries
        if domain is not None and not set(e[1].get_chemical_symbols()) <= domain
    )
    entries = [e for e in entries if e[0] not in out_of_domain]
    for name, atoms, ref in progress_bar(entries, desc="dcdft EOS", unit="crystal", leave=False):
        try:
            fit = fit_bulk_modulus(atoms, calc, strain=strain, points=points)
        except EosFitError as exc:
            failures.append({"id": name, "reason": exc.reason, "message": str(exc)})
            continue
        rows.append(
            {
                "id": name,
                "y_true": float(ref["wien2k_B"]),
                "y_pred": fit.bulk_modulus,
                "v0_ref": float(ref["wien2k_volume"]),
                "v0_pred": fit.v0_per_atom,
            }
        )
    metrics = (
        regression_metrics([r["y_true"] for r in rows], [r["y_pred"] for r in rows]) if rows else {}
    )
    if rows:
        v_true, v_pred = (
            np.array([r["v0_ref"] for r in rows]),
            np.array([r["v0_pred"] for r in rows]),
        )
        metrics["v0_mae"] = float(np.mean(np.abs(v_pred - v_true)))
    baselines = {}
    if len(rows) > 1:  # the trivial predictor: each crystal gets the mean reference B of the others
        t = np.array([r["y_true"] for r in rows])
        baselines["mean"] = regression_metrics(t, (t.sum() - t) / (len(t) - 1))
    return {
        "predictions": rows,
        "failures": failures,
        "metrics": metrics,
        "unit": "GPa",
        "out_of_domain": out_of_domain,
        "baselines": baselines,
    }
