"""The eval report's content as blocks (headings, paragraphs, tables, figures), which foundation.report
renders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from foundation.evals.paired import coverage_note, size_label

from foundation.report import Block


def _pm(stat: dict[str, float] | None, digits: int = 4) -> str:
    if not stat or stat.get("count", 0) == 0:
        return "-"
    if stat["count"] == 1:
        return f"{stat['mean']:.{digits}g}"
    return f"{stat['mean']:.{digits}g} ± {stat['std']:.2g}"


def _num(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def report_blocks(results: dict[str, Any], figures: Sequence[str]) -> list[Block]:
    """Everything the report says, in order; `figures` are the names task_figures produced."""
    ck = results["checkpoint"]
    blocks: list[Block] = [("h", 1, f"Eval report: {results['suite']['name']}")]
    pre = ck.get("pretraining_manifest") or {}
    blocks.append(
        (
            "p",
            f"Checkpoint `{ck['path']}` ({ck['kind']}, {ck.get('which', '')} weights), "
            f"weights sha256 `{ck['sha256']}`. Pre-training data manifest sha256 "
            f"`{pre.get('sha256') or 'unknown'}`. Created {results['created']}.",
        )
    )
    check = results.get("pretraining_check") or {}
    if check.get("flagged"):
        blocks.append(
            (
                "p",
                f"**Pre-training check failed**: {check['message']}. Fine-tuning numbers of this "
                "checkpoint say little about pre-training.",
            )
        )
    elif check.get("available"):
        blocks.append(("p", f"Pre-training check: {check['message']}."))
    if check.get("terms"):
        fit = any("training_frames_mae" in v for v in check["terms"].values())
        blocks.append(
            (
                "table",
                ["pre-training validation", "model MAE", "trivial baseline MAE", "ratio"]
                + (["model MAE on training frames (fit check)"] if fit else []),
                [
                    [t, _num(v["model_mae"]), _num(v["baseline_mae"]), _num(v["ratio"], 3)]
                    + ([_num(v.get("training_frames_mae"))] if fit else [])
                    for t, v in check["terms"].items()
                ],
            )
        )
        if fit:
            blocks.append(
                (
                    "p",
                    "A training-frame error about as large as the validation error means the "
                    "pre-training underfits: a larger model, more steps or another loss balance would "
                    "help it, more data of the same kind would not.",
                )
            )
    blocks += _overlap_blocks(results.get("pretraining_overlap") or {})
    if results.get("missing_units"):
        blocks.append(
            (
                "p",
                f"**Incomplete**: {len(results['missing_units'])} units have no result: "
                + ", ".join(results["missing_units"][:20]),
            )
        )
    finetune = [t for t in results["tasks"] if t["category"] == "finetune"]
    if finetune:
        blocks.append(("h", 2, "Fine-tuning: pre-trained versus from scratch"))
        blocks.append(
            (
                "p",
                "Test metrics on each fold's whole held-out fold (only training folds are subsampled); "
                "mean ± standard deviation over folds and seeds (numpy std, ddof=0), at the largest "
                "training size. The scratch twin has the same architecture, optimiser, schedule, "
                "epochs, early stopping and splits. Beside each model: the trivial baseline on the "
                "same splits (predicting the training mean) and the model/baseline MAE ratio.",
            )
        )
        rows = []
        for t in finetune:
            s = t["summary"]
            p_mae, s_mae = s.get("pretrained", {}).get("mae"), s.get("scratch", {}).get("mae")
            ratio = (
                p_mae["mean"] / s_mae["mean"]
                if p_mae and s_mae and s_mae["count"] and s_mae["mean"]
                else None
            )
            head = size_label(t.get("headline_size"))
            base = (t.get("baselines") or {}).get(head, {})
            ratios = (t.get("baseline_ratios") or {}).get(head, {})
            rows.append(
                [
                    t["name"],
                    t["unit"] or "-",
                    str(t["description"].get("num_structures", "-")),
                    head,
                    _pm(p_mae),
                    _pm(s_mae),
                    _pm(base.get("mean", {}).get("mae")),
                    _pm(base.get("median", {}).get("mae")),
                    _num(ratios.get("pretrained"), 3),
                    _num(ratios.get("scratch"), 3),
                    _pm(s.get("pretrained", {}).get("r2"), 3),
                    _pm(s.get("scratch", {}).get("r2"), 3),
                    _num(ratio, 3),
                ]
            )
        blocks.append(
            (
                "table",
                [
                    "task",
                    "unit",
                    "structures",
                    "training size",
                    "MAE pre-trained",
                    "MAE scratch",
                    "MAE mean predictor",
                    "MAE median predictor",
                    "pre-trained/baseline",
                    "scratch/baseline",
                    "R² pre-trained",
                    "R² scratch",
                    "MAE ratio pre/scratch",
                ],
                rows,
            )
        )
        if "comparison" in figures:
            blocks.append(
                ("fig", "comparison", "Test MAE per task; dots are single (fold, seed) runs.")
            )
        for t in finetune:
            blocks.extend(_finetune_task_blocks(t, figures))
    for t in results["tasks"]:
        if t["kind"] == "dcdft_eos":
            blocks.extend(_eos_blocks(t, figures))
        elif t["kind"] == "zeroshot":
            blocks.extend(_zeroshot_blocks(t, figures))
    blocks.append(("h", 2, "Reproduce"))
    blocks.append(
        ("p", f"`{results.get('command') or 'foundation eval'}`; every number is in results.json.")
    )
    return blocks


def _overlap_blocks(overlap: dict[str, Any]) -> list[Block]:
    """Per task: its test structures that share a reduced composition with a pre-training frame."""
    if not overlap.get("available"):
        return (
            [("p", f"Test compositions against pre-training: not known ({overlap['message']}).")]
            if overlap
            else []
        )
    return [
        ("p", f"Test compositions against pre-training: {overlap['message']}."),
        (
            "table",
            ["task", "test structures", "sharing a composition with a pre-training frame"],
            [
                [name, str(row["test_structures"]), str(row["share_composition"])]
                for name, row in overlap["tasks"].items()
            ],
        ),
    ]


def _finetune_task_blocks(t: dict[str, Any], figures: Sequence[str]) -> list[Block]:
    out: list[Block] = [("h", 3, t["name"])]
    src = ", ".join(
        f"`{k}` (sha256 `{v[:16]}…`)" if len(v) == 64 else f"`{k}` ({v})"
        for k, v in t["description"].get("provenance", {}).items()
    )
    out.append(
        (
            "p",
            f"Target `{t['property']}`{(' in ' + t['unit']) if t['unit'] else ''}; "
            f"{t['description'].get('num_structures')} structures; data: {src}.",
        )
    )
    rows = []
    for fold in sorted({u["fold"] for u in t["units"]}):
        row = [str(fold)]
        for v in ("pretrained", "scratch"):
            row.append(_pm(t["per_fold"].get(v, {}).get(str(fold), {}).get("mae")))
        rows.append(row)
    out.append(
        ("table", ["fold", "MAE pre-trained (over seeds)", "MAE scratch (over seeds)"], rows)
    )
    out.extend(_size_blocks(t))
    for suffix, caption in (
        (
            "sizes",
            "test MAE against training size: mean over folds and seeds, bootstrap 95% "
            "interval of the mean; dashed: the mean predictor",
        ),
        ("parity", "test predictions at the largest training size, all folds and seeds"),
        ("curves", "validation MAE on the inner split per epoch"),
    ):
        if f"{t['name']}_{suffix}" in figures:
            out.append(("fig", f"{t['name']}_{suffix}", f"{t['name']}: {caption}"))
    return out


def _size_blocks(t: dict[str, Any]) -> list[Block]:
    """Per training size: every arm's MAE over folds and seeds beside the baseline, then the paired verdicts."""
    out: list[Block] = []
    by_size = t.get("by_size") or {}
    variants = sorted({v for row in by_size.values() for v in row})
    if by_size:
        rows = []
        for label, row in by_size.items():
            base = (t.get("baselines") or {}).get(label, {})
            rows.append(
                [label]
                + [_pm(row.get(v, {}).get("mae")) for v in variants]
                + [_pm(base.get("mean", {}).get("mae"))]
            )
        out.append(
            (
                "table",
                ["training size"] + [f"MAE {v}" for v in variants] + ["MAE mean predictor"],
                rows,
            )
        )
    comparisons = t.get("comparisons") or []
    if comparisons:
        out.append(
            (
                "p",
                "Paired differences of test MAE per (pre-training seed, fold, fine-tuning seed, size), "
                "treatment minus control, with a hierarchical bootstrap 95% interval of their mean (10,000 "
                "resamples of pre-training seeds, then folds, then fine-tuning seeds; a level with one "
                "member adds no variance, so with one pre-training seed the interval does not cover "
                "pre-training variance). Verdict: helps when the interval lies below zero, hurts above, else "
                "no detectable effect (always so with fewer than 6 pairs).",
            )
        )
        out.append(
            (
                "table",
                [
                    "treatment - control",
                    "training size",
                    "pairs",
                    "pre-training seeds / folds / fine-tuning seeds",
                    "MAE treatment",
                    "MAE control",
                    "mean difference",
                    "95% interval",
                    "pairs favouring treatment",
                    "ratio",
                    "verdict",
                ],
                [
                    [
                        f"{c['treatment']} - {c['control']}",
                        size_label(c["size"]),
                        str(c["pairs"]),
                        " / ".join(str(n) for n in c["levels"].values()),
                        _num(c["treatment_mae"]),
                        _num(c["control_mae"]),
                        _num(c["mean_difference"], 3),
                        f"[{_num(c['ci95'][0], 3)}, {_num(c['ci95'][1], 3)}]",
                        str(c["favourable_pairs"]),
                        _num(c["ratio"], 3),
                        c["verdict"],
                    ]
                    for c in comparisons
                ],
            )
        )
        for c in comparisons:
            out.append(
                (
                    "p",
                    f"{t['name']}, {size_label(c['size'])} training structures, {c['treatment']} vs "
                    f"{c['control']}: **{c['verdict']}** (difference {_num(c['mean_difference'], 3)}, "
                    f"95% interval [{_num(c['ci95'][0], 3)}, {_num(c['ci95'][1], 3)}], "
                    f"{c['pairs']} pairs"
                    + (f"; {coverage_note(c)}" if coverage_note(c) else "")
                    + ").",
                )
            )
    return out


def _eos_blocks(t: dict[str, Any], figures: Sequence[str]) -> list[Block]:
    u = t["units"][0] if t["units"] else None
    out: list[Block] = [("h", 2, f"Zero-shot bulk moduli: {t['name']}")]
    if u is None:
        return out + [("p", "no result")]
    m = u["metrics"]
    out.append(
        (
            "p",
            f"Birch-Murnaghan fit of E(V) with the potential on the dcdft crystals (ASE) against WIEN2k: "
            f"MAE {_num(m.get('mae'))} GPa, RMSE {_num(m.get('rmse'))} GPa, R² {_num(m.get('r2'), 3)}, "
            f"V0 MAE {_num(m.get('v0_mae'))} A³/atom over {m.get('n', 0)} crystals; "
            f"{len(u['failures'])} fits failed.",
        )
    )
    base = (u.get("baselines") or {}).get("mean")
    if base and m.get("mae") is not None:
        out.append(
            (
                "p",
                f"Trivial baseline (each crystal predicted by the mean WIEN2k B of the others): MAE "
                f"{_num(base['mae'])} GPa; potential/baseline MAE ratio {_num(m['mae'] / base['mae'], 3)}.",
            )
        )
    if u.get("out_of_domain"):
        out.append(
            (
                "p",
                f"Out of domain (elements absent from the pre-training data; not fitted, not counted as "
                f"failures): {', '.join(u['out_of_domain'])}.",
            )
        )
    if u["failures"]:
        out.append(
            (
                "table",
                ["crystal", "reason", "message"],
                [[f["id"], f["reason"], f["message"]] for f in u["failures"]],
            )
        )
    if f"{t['name']}_parity" in figures:
        out.append(("fig", f"{t['name']}_parity", "bulk modulus: potential against WIEN2k"))
    out.append(
        (
            "table",
            [
                "crystal",
                "B WIEN2k (GPa)",
                "B potential (GPa)",
                "V0 WIEN2k (A³/atom)",
                "V0 potential (A³/atom)",
            ],
            [
                [
                    r["id"],
                    _num(r["y_true"]),
                    _num(r["y_pred"]),
                    _num(r["v0_ref"]),
                    _num(r["v0_pred"]),
                ]
                for r in u["predictions"]
            ],
        )
    )
    return out


def _beside(summary: dict[str, Any], quantity: str) -> list[str]:
    """[model MAE, baseline MAE, ratio] cells of one quantity of a per-source zero-shot summary."""
    model, base = summary.get(f"{quantity}_mae"), summary.get(f"{quantity}_baseline_mae")
    return [_num(model), _num(base), _num(model / base if model is not None and base else None, 3)]


def _zeroshot_blocks(t: dict[str, Any], figures: Sequence[str]) -> list[Block]:
    u = t["units"][0] if t["units"] else None
    out: list[Block] = [("h", 2, f"Zero-shot energy, force and stress errors: {t['name']}")]
    if u is None:
        return out + [("p", "no result")]
    d = t["description"]
    out.append(
        (
            "p",
            f"{u['n_frames']} frames of split `{d.get('split')}` of `{d.get('path')}` "
            f"(manifest sha256 `{d.get('manifest_sha256', '')}`).",
        )
    )
    names = {
        "energy_per_atom": "energy (eV/atom)",
        "forces": "forces (eV/A, components)",
        "stress": "stress (eV/A³, components)",
    }
    base = u.get("baselines") or {}
    out.append(
        (
            "p",
            "Trivial baseline on the same frames: the element reference energies alone (plus the per-atom "
            "shift), zero forces, zero stress.",
        )
    )
    out.append(
        (
            "table",
            ["quantity", "MAE", "RMSE", "values", "baseline MAE", "MAE / baseline"],
            [
                [
                    names[k],
                    _num(m["mae"]),
                    _num(m["rmse"]),
                    str(m["n"]),
                    _num(base.get(k, {}).get("mae")),
                    _num(
                        m["mae"] / base[k]["mae"]
                        if m.get("mae") is not None and base.get(k, {}).get("mae")
                        else None,
                        3,
                    ),
                ]
                for k, m in u["metrics"].items()
            ],
        )
    )
    rows = [
        [
            el,
            str(m.get("frames", 0)),
            _num(m.get("energy_per_atom_mae")),
            str(m.get("atoms", 0)),
            _num(m.get("forces_mae")),
        ]
        for el, m in u["per_element"].items()
    ]
    out.append(
        (
            "table",
            ["element", "frames with it", "energy MAE (eV/atom)", "atoms", "force MAE (eV/A)"],
            rows,
        )
    )
    if u.get("per_source"):
        out.append(
            (
                "table",
                [
                    "source",
                    "frames",
                    "energy MAE (eV/atom)",
                    "baseline",
                    "MAE / baseline",
                    "force MAE (eV/A)",
                    "baseline",
                    "MAE / baseline",
                ],
                [
                    [name, str(m["frames"]), *_beside(m, "energy_per_atom"), *_beside(m, "forces")]
                    for name, m in u["per_source"].items()
                ],
            )
        )
    if f"{t['name']}_errors" in figures:
        out.append(("fig", f"{t['name']}_errors", "distribution of zero-shot errors"))
    return out
