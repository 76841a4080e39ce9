"""`foundation release RUN_DIR --out DIR`: a self-contained, checksummed bundle of a trained potential (weights,
config, normalisers, element references, pre-training data digest, eval report, model card). The layout is
documented in foundation/release.py, which also loads it."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from foundation.evals.checkpoint import (
    checkpoint_kind,
    pretraining_manifest,
    read_run_config,
    weights_dir,
)
from foundation.evals.model_card import model_card
from foundation.evals.partial import check_partial, eval_shortfall, training_shortfall

from foundation.data.manifest import MANIFEST_NAME, Manifest
from foundation.files import sha256_file
from foundation.release import MODEL_CARD, RELEASE_JSON, REPORT_DIR, write_checksums
from foundation.report import FIGURES_DIR, REPORT_FILES, RESULTS_JSON
from foundation.train.run_layout import CONFIG, MODEL_META, MODEL_WEIGHTS, RunLayout

RELEASE_FORMAT = "foundation-release"
RELEASE_VERSION = 1


def _dataset_summary(manifest_path: str | None) -> dict[str, Any]:
    if not manifest_path or not (Path(manifest_path) / MANIFEST_NAME).is_file():
        return {}
    m = Manifest.load(manifest_path)
    return {
        "splits": {s: m.num_frames(s) for s in m.splits},
        "elements": m.elements,
        "element_references": m.element_references,
        "reader": m.reader,
        "quarantine": m.quarantine,
    }


def energy_sources(model_json: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """What the energies refer to: `energy_source` (the data source a calculator predicts for by default; None: the
    model has one reference for all its training frames), `sources` (every source it can predict for), and
    `pretraining_mixture` (the datasets of a data.sources run, with weights and manifest digests)."""
    heads = (model_json.get("model") or {}).get("heads") or {}
    sources = list(heads.get("sources") or [])
    out: dict[str, Any] = {
        "energy_source": heads.get("default_source") or (sources[0] if sources else None),
        "sources": sources,
    }
    mixture = (config.get("data") or {}).get("sources") or []
    if mixture:
        out["pretraining_mixture"] = [
            {
                **pretraining_manifest({"data": {"path": entry["path"]}}),
                "weight": entry.get("weight", 1.0),
                "source": entry.get("source"),
            }
            for entry in mixture
        ]
    return out


def eval_summary(report_dir: Path) -> dict[str, Any]:
    """Per-task summary of an eval report's results.json (for release.json and the model card)."""
    results = json.loads((report_dir / RESULTS_JSON).read_text())
    return {
        "suite": results["suite"]["name"],
        "checkpoint_sha256": results["checkpoint"]["sha256"],
        "missing_units": results.get("missing_units") or [],
        "tasks": [
            {
                "name": t["name"],
                "kind": t["kind"],
                "unit": t.get("unit", ""),
                "summary": t["summary"],
            }
            for t in results["tasks"]
        ],
    }


def make_release(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    report: str | os.PathLike | None = None,
    which: str = "best",
    license: str = "MIT",
    name: str | None = None,
    allow_partial: bool = False,
) -> Path:
    """Write the release bundle of run_dir (its best/ EMA fp32 weights, else last/) into `out` (must not exist
    or be empty); built in a temporary directory and renamed when complete. Returns `out`. A run that did not
    reach its planned steps, or a report with units missing, is refused unless `allow_partial`, and then
    listed under release.json's `incomplete` and on the model card (evals/partial.py)."""
    run_dir, out = Path(run_dir).resolve(), Path(out).resolve()
    if checkpoint_kind(run_dir) != "run":
        raise ValueError(f"{run_dir} is a release already; give a training run directory")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a fresh --out directory")
    source = weights_dir(run_dir, which)
    config = read_run_config(run_dir)
    model_json = json.loads((source / MODEL_META).read_text())
    normalization = model_json.get("normalization") or {}
    manifest = pretraining_manifest(config)
    dataset = _dataset_summary(manifest["path"])
    report_dir = Path(report).resolve() if report is not None else None
    evals = eval_summary(report_dir) if report_dir is not None else None
    weights_sha = sha256_file(source / MODEL_WEIGHTS)
    if evals is not None and evals["checkpoint_sha256"] != weights_sha:
        raise ValueError(
            f"the report in {report_dir} evaluated other weights (sha256 {evals['checkpoint_sha256']}) "
            f"than {source / MODEL_WEIGHTS} ({weights_sha})"
        )
    incomplete = check_partial(
        run_dir,
        [training_shortfall(run_dir, config), evals and eval_shortfall(evals)],
        allow_partial,
    )
    info = {
        "format": RELEASE_FORMAT,
        "version": RELEASE_VERSION,
        "name": name or run_dir.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "license": license,
        "source": {"run_dir": str(run_dir), "which": source.name},
        "weights_sha256": weights_sha,
        "pretraining_manifest": manifest,
        "dataset": dataset,
        "normalization": normalization,
        "element_references": normalization.get("element_references") or {},
        "model": model_json.get("model", {}),
        "objective": model_json.get("objective") or config.get("objective"),
        "validation": {"step": model_json.get("step"), **(model_json.get("val") or {})},
        "evals": evals,
        "incomplete": incomplete,
        "parent": model_json.get(
            "parent"
        ),  # the model a fine-tuned run started from (None: pre-trained)
        **energy_sources(model_json, config),
    }
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        shutil.copyfile(source / MODEL_WEIGHTS, tmp / MODEL_WEIGHTS)
        shutil.copyfile(source / MODEL_META, tmp / MODEL_META)
        shutil.copyfile(RunLayout(run_dir).config, tmp / CONFIG)
        if report_dir is not None:
            (tmp / REPORT_DIR).mkdir()
            for f in REPORT_FILES:
                shutil.copyfile(report_dir / f, tmp / REPORT_DIR / f)
            if (report_dir / FIGURES_DIR).is_dir():
                shutil.copytree(report_dir / FIGURES_DIR, tmp / REPORT_DIR / FIGURES_DIR)
        (tmp / RELEASE_JSON).write_text(json.dumps(info, indent=1) + "\n")
        (tmp / MODEL_CARD).write_text(model_card(info))
        write_checksums(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
