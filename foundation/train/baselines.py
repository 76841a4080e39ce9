"""Trivial baselines for pre-training validation, and the check that a run beats them clearly.

The baseline predicts, for every frame, the energy from the element references alone (sum_i ref[Z_i] plus the
per-atom shift: what the energy head gives before it learns anything), zero forces, zero stress and zero
denoising noise. Its errors go through the same objective as the model's, so `{term}_baseline_mae` sits beside
`{term}_mae` in every validation record, and `baseline_check` flags a run whose errors are not clearly below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from foundation.models.blocks import scatter_sum
from foundation.train.validation import FIT

TERMS_CHECKED = ("energy", "forces", "stress", "denoise")
CLEARLY_BELOW = 0.8  # a term passes when model MAE <= 0.8 x baseline MAE


def reference_energies(model: torch.nn.Module, batch: Any) -> Tensor:
    """(B,) float64 energy of each structure from the energy head's fitted references alone (its frame's source's
    table when the head has sources; not the offsets it learns, so the baseline stays fixed while a run trains)
    plus the per-atom shift: the model before it learns anything."""
    head = model.energy_head
    atoms = SimpleNamespace(numbers=batch.numbers.long(), batch=batch.batch.long())
    with torch.no_grad():
        per_atom = head.references(
            atoms, getattr(batch, "source", None), torch.float64, learned=False
        ) + head.shift.to(torch.float64)
        return scatter_sum(per_atom, atoms.batch, int(batch.num_graphs))


def baseline_prediction(
    model: torch.nn.Module, batch: Any, outputs: tuple[str, ...]
) -> dict[str, Tensor]:
    """The trivial predictor's outputs for `batch`: reference energies, zero forces/stress/noise."""
    out: dict[str, Tensor] = {}
    if "energy" in outputs and getattr(model, "energy_head", None) is not None:
        out["energy"] = reference_energies(model, batch)
    if "forces" in outputs:
        out["forces"] = torch.zeros_like(batch.positions)
    if "stress" in outputs:
        out["stress"] = torch.zeros_like(batch.cell)
    if "noise" in outputs:
        out["noise"] = torch.zeros_like(batch.positions)
    return out


def baseline_check(val: Mapping[str, Any], threshold: float = CLEARLY_BELOW) -> dict[str, Any]:
    """{terms: {term: {model_mae, baseline_mae, ratio}}, flagged, message} from validation metrics holding
    `{term}_mae` and `{term}_baseline_mae` (with the fit check's `fit/{term}_mae`, also `training_frames_mae`);
    flagged when a term's ratio exceeds `threshold` (or no term has a baseline to compare with, e.g. a run made
    before baselines were logged: `available` is then False)."""
    terms = {}
    for term in TERMS_CHECKED:
        model, base = val.get(f"{term}_mae"), val.get(f"{term}_baseline_mae")
        if model is None or base is None:
            continue
        terms[term] = {
            "model_mae": float(model),
            "baseline_mae": float(base),
            "ratio": float(model) / float(base) if base else None,
        }
        if val.get(f"{FIT}{term}_mae") is not None:  # the fit check's error on training frames
            terms[term]["training_frames_mae"] = float(val[f"{FIT}{term}_mae"])
    if not terms:
        return {
            "available": False,
            "flagged": False,
            "terms": {},
            "message": "no baseline errors in the validation record (a run logged before baselines existed)",
        }
    weak = [t for t, v in terms.items() if v["ratio"] is None or v["ratio"] > threshold]
    message = (
        f"validation errors not clearly below the trivial baseline (ratio > {threshold:g}) for "
        + ", ".join(
            f"{t} ({terms[t]['ratio']:.3g})" if terms[t]["ratio"] is not None else t for t in weak
        )
        if weak
        else f"every term below {threshold:g} x its trivial baseline"
    )
    return {
        "available": True,
        "flagged": bool(weak),
        "threshold": threshold,
        "terms": terms,
        "message": message,
    }
