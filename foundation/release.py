"""Release bundles: checksums (SHA256SUMS, `sha256sum -c` format) and release.json. A release is loaded
through foundation/models/loading.py, which verifies every checksum first and reads only safetensors and JSON
(nothing is unpickled).

Layout of a release directory (written by `foundation release`, evals/release.py):
    model.safetensors  consolidated fp32 weights (EMA), normalisation buffers included
    model.json         model config, normalisation, step, validation metrics (the run's best/ or last/ export)
    release.json       provenance: source run, weights sha256, pre-training manifest digest, element references
    config.yaml        the training run's resolved config
    README.md          model card
    report/            the eval report (results.json, report.md, report.html, figures/), when given
    SHA256SUMS         sha256 of every other file

A release directory is also a Hugging Face model repository (README.md opens with the hub's YAML front matter;
`foundation release --push` uploads it): hidden files and folders a hub or git adds (.gitattributes, .git/,
.cache/, .huggingface/) are neither checksummed nor make verification fail. A changed weights, model.json,
release.json or config.yaml always does; a model card or report edited on the hub only gives a warning when
loading (documentation does not change the model), while `verify_checksums` itself stays strict.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from foundation.errors import UserError
from foundation.files import read_json_bounded, sha256_file, write_text_atomic
from foundation.train.run_layout import MODEL_META, MODEL_WEIGHTS

CHECKSUMS = "SHA256SUMS"
RELEASE_JSON = "release.json"
REQUIRED = (MODEL_WEIGHTS, MODEL_META, RELEASE_JSON)
MODEL_CARD, REPORT_DIR = "README.md", "report"
DOCUMENTATION = (
    MODEL_CARD,
    f"{REPORT_DIR}/",
)  # files that do not change the model (see the module docstring)
_LFS_POINTER = b"version https://git-lfs"
MAX_RELEASE_JSON_BYTES = 1 << 20  # provenance, normalisers, eval summary: kilobytes

log = logging.getLogger(__name__)


class ReleaseError(UserError, ValueError):
    """A release directory that is incomplete or whose files do not match SHA256SUMS."""


def _files(directory: Path) -> list[str]:
    """The bundle's files: everything under DIR but SHA256SUMS and hidden files or folders (a hub's, git's)."""
    files = (p.relative_to(directory) for p in directory.rglob("*") if p.is_file())
    return sorted(
        p.as_posix()
        for p in files
        if p.as_posix() != CHECKSUMS and not any(part.startswith(".") for part in p.parts)
    )


def _is_documentation(name: str) -> bool:
    return any(name == doc or (doc.endswith("/") and name.startswith(doc)) for doc in DOCUMENTATION)


def _mismatch(path: Path) -> str:
    with open(path, "rb") as fh:
        pointer = fh.read(len(_LFS_POINTER)) == _LFS_POINTER
    hint = " (a Git LFS pointer: install git-lfs and run `git lfs pull`)" if pointer else ""
    return f"sha256 mismatch (the file was modified or corrupted){hint}"


def write_checksums(directory: str | os.PathLike) -> Path:
    """Write DIR/SHA256SUMS covering every file under DIR (relative POSIX paths, sorted)."""
    directory = Path(directory)
    lines = [f"{sha256_file(directory / name)}  {name}" for name in _files(directory)]
    write_text_atomic(directory / CHECKSUMS, "\n".join(lines) + "\n")
    return directory / CHECKSUMS


def read_checksums(directory: str | os.PathLike) -> dict[str, str]:
    """{relative path: sha256} from DIR/SHA256SUMS; a malformed line is a ReleaseError naming it."""
    path = Path(directory) / CHECKSUMS
    if not path.is_file():
        raise ReleaseError(
            f"{directory}: no {CHECKSUMS}; not a release directory (make one with `foundation release`)"
        )
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if (
            not sep
            or len(digest) != 64
            or not name
            or ".." in Path(name).parts
            or Path(name).is_absolute()
        ):
            raise ReleaseError(f"{path}:{number}: malformed line {line!r}")
        sums[name.lstrip("*")] = digest.lower()
    return sums


def verify_checksums(
    directory: str | os.PathLike, *, documentation: str = "error"
) -> dict[str, str]:
    """Check every file listed in SHA256SUMS and that no file of the bundle is unlisted; raise ReleaseError
    naming each problem. `documentation="warn"`: a changed or unlisted model card or report file is logged as a
    warning instead (loading does that). Returns the checksums."""
    directory = Path(directory)
    sums = read_checksums(directory)
    problems = []
    for name, digest in sums.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: listed in {CHECKSUMS} but missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name}: {_mismatch(path)}")
    problems += [
        f"{name}: not listed in {CHECKSUMS}" for name in _files(directory) if name not in sums
    ]
    problems += [f"{name}: required file missing" for name in REQUIRED if name not in sums]
    if documentation == "warn":
        for problem in [p for p in problems if _is_documentation(p.split(":", 1)[0])]:
            log.warning(
                "release %s: %s (documentation only; the model is unchanged)", directory, problem
            )
            problems.remove(problem)
    if problems:
        raise ReleaseError(f"release {directory} failed verification:\n  " + "\n  ".join(problems))
    return sums


def release_info(directory: str | os.PathLike) -> dict[str, Any]:
    """The bundle's release.json (provenance): a JSON object of at most MAX_RELEASE_JSON_BYTES, read no
    further than that; anything else is a ReleaseError naming the file."""
    path = Path(directory) / RELEASE_JSON
    try:
        info = read_json_bounded(path, MAX_RELEASE_JSON_BYTES)
    except (OSError, ValueError) as exc:
        detail = f"{path}: unreadable ({exc.strerror})" if isinstance(exc, OSError) else str(exc)
        raise ReleaseError(detail) from None
    if not isinstance(info, dict):
        raise ReleaseError(f"{path}: a JSON {type(info).__name__}, not an object")
    return info
