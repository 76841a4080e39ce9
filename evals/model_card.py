"""The model card (README.md of a release): data, objective, model, metrics, intended use, limits, license."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from ase.data import chemical_symbols

LIBRARY_NAME = "foundation-mlip"  # the distribution name (pyproject.toml)
HUB_TAGS = [
    "interatomic-potential",
    "machine-learning-force-field",
    "materials-science",
    "chemistry",
    "graph-neural-network",
    "ase",
    "pytorch",
    "safetensors",
]
# License ids the Hugging Face hub knows; anything else is "other" with its name kept.
HUB_LICENSES = {
    "mit",
    "apache-2.0",
    "bsd-2-clause",
    "bsd-3-clause",
    "gpl-3.0",
    "lgpl-3.0",
    "mpl-2.0",
    "cc0-1.0",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0",
    "odc-by",
    "unlicense",
}


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _metrics_table(evals: dict[str, Any]) -> list[str]:
    lines = ["| task | kind | metric | pre-trained | from scratch |", "|---|---|---|---|---|"]
    for t in evals["tasks"]:
        s = t["summary"]
        unit = f" ({t['unit']})" if t.get("unit") else ""
        if "pretrained" in s:
            for metric in ("mae", "rmse", "r2"):
                cells = []
                for v in ("pretrained", "scratch"):
                    stat = (s.get(v) or {}).get(metric)
                    cells.append(
                        "-"
                        if not stat or stat.get("mean") is None
                        else f"{stat['mean']:.4g} ± {stat['std']:.2g}"
                    )
                lines.append(
                    f"| {t['name']} | fine-tuning | {metric.upper()}{unit if metric != 'r2' else ''} | "
                    f"{cells[0]} | {cells[1]} |"
                )
        else:
            for quantity, m in (s.get("zeroshot") or {}).items():
                if isinstance(m, dict):
                    lines.append(
                        f"| {t['name']} | zero-shot | {quantity} MAE | {_fmt(m.get('mae'))} | - |"
                    )
                elif quantity == "mae":
                    lines.append(f"| {t['name']} | zero-shot | MAE{unit} | {_fmt(m)} | - |")
    return lines


def _sources(value: Any) -> list[str]:
    """Every string under a 'source' or 'sources' key of the reader record (nested dicts and lists)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("source", "sources"):
                found += (
                    [item]
                    if isinstance(item, str)
                    else [x for x in item or [] if isinstance(x, str)]
                )
            else:
                found += _sources(item)
    elif isinstance(value, list):
        for item in value:
            found += _sources(item)
    return found


def front_matter(info: dict[str, Any]) -> str:
    """The Hugging Face hub's YAML metadata block (license, library_name, tags, datasets) of a release."""
    license = str(info.get("license", "MIT"))
    meta: dict[str, Any] = {
        "license": license.lower() if license.lower() in HUB_LICENSES else "other"
    }
    if meta["license"] == "other":
        meta["license_name"] = license
    backbone = ((info.get("model") or {}).get("backbone") or {}).get("name")
    meta["library_name"] = LIBRARY_NAME
    meta["tags"] = HUB_TAGS + ([backbone] if backbone else [])
    manifest_path = (info.get("pretraining_manifest") or {}).get("path")
    datasets = sorted(set(_sources((info.get("dataset") or {}).get("reader"))))
    if not datasets and manifest_path:
        datasets = [Path(manifest_path).name]
    if datasets:
        meta["datasets"] = datasets
    if info.get("parent"):
        parent = info["parent"]
        meta["base_model"] = parent.get("name") if isinstance(parent, dict) else str(parent)
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _incomplete_lines(incomplete: list[str] | None) -> list[str]:
    """The warning of a release made with --allow-partial (release.json `incomplete`)."""
    if not incomplete:
        return []
    return [f"> **Incomplete release**: {'; '.join(incomplete)}.", ""]


def _parent_section(parent: dict[str, Any] | None) -> list[str]:
    """'Fine-tuned from': the parent release or run (name, weights sha256) and its own ancestors."""
    if not parent:
        return []
    lines = ["## Fine-tuned from", ""]
    while parent:
        lines.append(
            f"- `{parent.get('name')}` ({parent.get('kind')} `{parent.get('path')}`, step {parent.get('step')}), "
            f"weights sha256 `{parent.get('weights_sha256')}`"
        )
        parent = parent.get("parent")
    return lines + [
        "",
        "Its weights and normalisers were the starting point; element reference energies were "
        "re-fitted on the fine-tuning data (docs/finetune.md).",
        "",
    ]


def _source_lines(info: dict[str, Any]) -> list[str]:
    """Which data source (DFT settings) the energies refer to, for a model trained on several."""
    sources = info.get("sources") or []
    if not sources:
        return []
    return [
        f"Energies refer to the data source `{info.get('energy_source')}` (its DFT settings) by default. The "
        f"model was trained on several sources with an energy reference each ({', '.join(f'`{s}`' for s in sources)}"
        "); `foundation.load_calculator(PATH, source=NAME)` predicts another one's energies. Forces and stress "
        "are the same for every source (the sources differ by a constant per element).",
        "",
    ]


def model_card(info: dict[str, Any]) -> str:
    """Markdown model card from a release.json body, opening with the hub's YAML front matter."""
    model = info.get("model") or {}
    backbone = model.get("backbone", {}) if isinstance(model, dict) else {}
    dataset = info.get("dataset") or {}
    manifest = info.get("pretraining_manifest") or {}
    elements = " ".join(chemical_symbols[z] for z in dataset.get("elements", []))
    lines = [
        front_matter(info),
        f"# {info['name']}: a foundation interatomic potential",
        "",
        *_incomplete_lines(info.get("incomplete")),
        "A graph neural network potential pre-trained on DFT energies, forces and stresses. Forces and stress "
        "are derivatives of the predicted energy (forces = -dE/dr, stress = (1/V) dE/dstrain, ASE sign).",
        "",
        "## Use",
        "",
        "```python",
        "import foundation",
        'calc = foundation.load_calculator("PATH/TO/THIS/DIRECTORY")  # verifies SHA256SUMS first',
        "atoms.calc = calc  # energy (eV), forces (eV/A), stress (eV/A^3, ASE sign)",
        "```",
        "",
        *_source_lines(info),
        "## Model",
        "",
        f"- backbone: `{backbone.get('name', '?')}` (hidden {backbone.get('hidden', '?')}, layers "
        f"{backbone.get('layers', '?')}, cutoff {backbone.get('cutoff', '?')} A)",
        f"- weights: `model.safetensors` (fp32, EMA), sha256 `{info['weights_sha256']}`",
        "- config and normalisers: `model.json`; training config: `config.yaml`",
        "",
        *_parent_section(info.get("parent")),
        "## Data",
        "",
        f"- {'fine-tuning' if info.get('parent') else 'pre-training'} dataset: `{manifest.get('path')}`, "
        f"manifest sha256 `{manifest.get('sha256')}`",
        f"- frames per split: {dataset.get('splits', 'unknown')}",
        f"- elements ({len(dataset.get('elements', []))}): {elements or 'unknown'}",
        f"- reader: {json.dumps(dataset.get('reader')) if dataset.get('reader') else 'not recorded'}",
        "",
        "## Objective",
        "",
    ]
    objective = info.get("objective")
    if isinstance(objective, dict) and objective:
        lines += [f"- {key}: {_fmt(value)}" for key, value in objective.items()]
    else:
        lines.append(f"{objective or 'see config.yaml'}")
    lines.append("")
    if info.get("validation"):
        lines += [
            "## Validation (pre-training data, held-out split)",
            "",
            "| metric | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in info["validation"].items()]
        lines.append("")
    if info.get("evals"):
        lines += [
            f"## Downstream evaluation (suite `{info['evals']['suite']}`, report in `report/`)",
            "",
        ]
        lines += _metrics_table(info["evals"]) + [""]
    lines += [
        "## Intended use",
        "",
        "Energies, forces and stresses of inorganic crystals and similar periodic systems close to the "
        "pre-training distribution: relaxations, screening, molecular dynamics as a fast surrogate of DFT, "
        "and a starting point for fine-tuning on property prediction.",
        "",
        "## Limits",
        "",
        "- Accuracy is bounded by the pre-training labels (their DFT functional, or a teacher potential's "
        "labels where the data say so) and by their chemistry: elements and bonding absent from the data "
        "are extrapolation.",
        "- Short-ranged: no interactions beyond the cutoff, no explicit electrostatics, charges, magnetism "
        "or dispersion beyond what the labels contain.",
        "- Not validated for molecules in vacuum, surfaces, defects or high-pressure phases unless the "
        "evaluation above says so. Check against DFT before drawing conclusions.",
        "",
        "## License",
        "",
        f"{info.get('license', 'MIT')}. Check the licenses of the pre-training data as well.",
        "",
        "## Integrity",
        "",
        "`SHA256SUMS` lists every file (`sha256sum -c SHA256SUMS`); `foundation.load_calculator` refuses the "
        "bundle when any file does not match.",
        "",
    ]
    return "\n".join(lines)
