"""`foundation release RUN_DIR --out DIR`: a self-contained, checksummed bundle of a trained potential (weights,
config, normalisers, element references, pre-training data digest, eval report, model card). The layout is
documented in foundation/release.py, which also loads it."""

from __future__ import annotations

import glob
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from foundation.evals.model_card import model_card
from foundation.evals.partial import check_partial, eval_shortfall, training_shortfall

from foundation.data.manifest import MANIFEST_NAME, Manifest
from foundation.errors import writing
from foundation.files import sha256_file
from foundation.models.loading import RUN, locate_model, read_model_meta
from foundation.release import CHECKSUMS, MODEL_CARD, RELEASE_JSON, REPORT_DIR, write_checksums
from foundation.report import FIGURES_DIR, REPORT_FILES, RESULTS_JSON
from foundation.train.run_layout import CONFIG, MODEL_META, MODEL_WEIGHTS

RELEASE_FORMAT = "foundation-release"
RELEASE_VERSION = 1
TMP_PREFIX = ".{name}.tmp-"  # + the pid of the process writing the release


def remove_stale_temporaries(out: Path) -> None:
    """Remove the temporary directories of releases into `out` whose process is gone (a release killed with
    kill -9 leaves `.OUT.tmp-PID` behind); one of a process still running on this host is kept."""
    prefix = TMP_PREFIX.format(name=out.name)
    for stale in out.parent.glob(f"{glob.escape(prefix)}*"):
        pid = stale.name[len(prefix) :]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _copy(source: Path, target: Path) -> None:
    """Copy a file; a full disk is DiskFull naming `target` and its device (not the source)."""
    with writing(target):
        shutil.copyfile(source, target)


def _write(target: Path, text: str) -> None:
    with writing(target):
        target.write_text(text)


def pretraining_manifest(
    run_config: dict[str, Any], base: Path | None = None
) -> dict[str, str | None]:
    """{path, sha256} of manifest.json of the run config's data.path (sha256 None when it is not here)."""
    data_path = (run_config.get("data") or {}).get("path")
    if not data_path:
        return {"path": None, "sha256": None}
    candidates = [Path(data_path)] + ([base / data_path] if base is not None else [])
    for candidate in candidates:
        if (candidate / MANIFEST_NAME).is_file():
            return {
                "path": str(candidate.resolve()),
                "sha256": sha256_file(candidate / MANIFEST_NAME),
            }
    return {"path": str(data_path), "sha256": None}


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
    files = locate_model(run_dir, which, kinds=(RUN,))
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a fresh --out directory")
    source = files.directory
    config = files.run_config()
    model_json = read_model_meta(files)
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
    remove_stale_temporaries(out)
    tmp = out.with_name(f"{TMP_PREFIX.format(name=out.name)}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _copy(source / MODEL_WEIGHTS, tmp / MODEL_WEIGHTS)
        _copy(source / MODEL_META, tmp / MODEL_META)
        _copy(files.path / CONFIG, tmp / CONFIG)
        if report_dir is not None:
            (tmp / REPORT_DIR).mkdir()
            for f in REPORT_FILES:
                _copy(report_dir / f, tmp / REPORT_DIR / f)
            if (report_dir / FIGURES_DIR).is_dir():
                with writing(tmp / REPORT_DIR / FIGURES_DIR):
                    shutil.copytree(report_dir / FIGURES_DIR, tmp / REPORT_DIR / FIGURES_DIR)
        _write(tmp / RELEASE_JSON, json.dumps(info, indent=1) + "\n")
        _write(tmp / MODEL_CARD, model_card(info))
        with writing(tmp / CHECKSUMS):
            write_checksums(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
