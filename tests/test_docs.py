"""docs/architecture.md matches the code: every module path it names exists, a function it names after a module
path is defined there, and every module of the packages has a row under its layer."""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.test_layers import COMMAND_LINE, JOB, LAUNCH, LIBRARY, layer, modules

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
LAYER_HEADINGS = {LIBRARY: "Library", JOB: "Jobs", LAUNCH: "Launch", COMMAND_LINE: "Command line"}
PATH = re.compile(r"`([\w./*-]+\.py|[\w./-]+/\*[\w.*]*)`")
PATH_AND_NAME = re.compile(r"`([\w./-]+\.py)` `(\w+(?:\.\w+)?)(?:\([^`]*\))?`")
TABLE_ROW = re.compile(r"^\| `([\w./-]+\.py)` \|")


def _defines_code(path: Path) -> bool:
    return any(
        isinstance(node, (ast.FunctionDef, ast.ClassDef))
        for node in ast.parse(path.read_text()).body
    )


def module_paths() -> dict[str, str]:
    """{repository path: dotted module name} of every module; a package's __init__.py only when it defines a
    function or class."""
    return {
        path.relative_to(REPO).as_posix(): name
        for name, path in modules().items()
        if path.name != "__init__.py" or _defines_code(path)
    }


def resolve(token: str, paths: list[str]) -> list[str]:
    """The files a path of the doc names: itself from the repository root, else the modules it ends (the doc
    abbreviates `foundation/train/sampler.py` as `train/sampler.py` once its package is clear)."""
    if "*" in token:
        return [p.relative_to(REPO).as_posix() for p in REPO.glob(token)] or [
            p for p in paths if fnmatch(p, "*/" + token)
        ]
    if (REPO / token).is_file():
        return [token]
    return [p for p in paths if p.endswith("/" + token)]


def _defined(path: Path, name: str) -> bool:
    """Whether `name` (a function, class or assigned name; `Class.member` for a member) is defined in `path`."""

    def names(body: list[ast.stmt]) -> dict[str, ast.stmt]:
        found: dict[str, ast.stmt] = {}
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[node.name] = node
            elif isinstance(node, ast.Assign):
                found.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found[node.target.id] = node
        return found

    outer, _, member = name.partition(".")
    node = names(ast.parse(path.read_text()).body).get(outer)
    if node is None or not member:
        return node is not None
    return isinstance(node, ast.ClassDef) and member in names(node.body)


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def test_every_module_path_in_the_doc_exists(doc):
    paths = list(module_paths())
    missing = sorted({token for token in PATH.findall(doc) if not resolve(token, paths)})
    assert not missing, f"{DOC.name} names paths that do not exist: {missing}"


def test_every_function_named_after_a_module_path_is_defined_there(doc):
    paths = list(module_paths())
    wrong = []
    for token, name in PATH_AND_NAME.findall(doc):
        files = resolve(token, paths)
        if len(files) == 1 and not _defined(REPO / files[0], name):
            wrong.append(f"{token} {name}")
    assert not wrong, f"{DOC.name} names functions their modules do not define: {wrong}"


def test_every_module_has_a_row_under_its_layer(doc):
    rows: dict[str, str] = {}
    heading = ""
    for line in doc.splitlines():
        if line.startswith("### "):
            heading = line[4:]
        elif match := TABLE_ROW.match(line):
            rows[match.group(1)] = heading
    wrong = []
    for path, name in sorted(module_paths().items()):
        expected = LAYER_HEADINGS[layer(name)]
        if path not in rows:
            wrong.append(f"{path}: no row (expected under a '### {expected} ...' heading)")
        elif not rows[path].startswith(expected):
            wrong.append(f"{path}: under '### {rows[path]}', not under '### {expected} ...'")
    assert not wrong, f"{DOC.name}, module tables:\n" + "\n".join(wrong)
