"""The layers import one way: library <- jobs <- launch <- command line, with no circles between modules.

library:      foundation.* (data, models, train, config, files, jobs, calculator, release, ...)
jobs:         foundation.data_prep, foundation.evals, foundation.studies; a study composes the others (prep, train,
              eval), so studies may import data_prep and evals; data_prep and evals import no other job
launch:       foundation.slurm (knows no workload: it never imports a job)
command line: foundation.cli (the only code that imports everything)
Every import counts, also one inside a function. Reads the source files, so it needs nothing installed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {
    "foundation": "foundation",
    "foundation.data_prep": "data_prep",
    "foundation.evals": "evals",
    "foundation.studies": "studies",
    "foundation.slurm": "slurm",
}
JOBS = ("foundation.data_prep", "foundation.evals", "foundation.studies")
JOB_IMPORTS = {  # the other job packages each job package may import
    "foundation.data_prep": (),
    "foundation.evals": (),
    "foundation.studies": ("foundation.data_prep", "foundation.evals"),
}
LIBRARY, JOB, LAUNCH, COMMAND_LINE = 0, 1, 2, 3


def layer(module: str) -> int:
    if module == "foundation.cli" or module.startswith("foundation.cli."):
        return COMMAND_LINE
    if module == "foundation.slurm" or module.startswith("foundation.slurm."):
        return LAUNCH
    if job_package(module):
        return JOB
    return LIBRARY


def job_package(module: str) -> str | None:
    return next((job for job in JOBS if module == job or module.startswith(job + ".")), None)


def modules() -> dict[str, Path]:
    """Every module of the installed namespace, by dotted name, from the folders pyproject maps."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules that `module` imports anywhere in its file (resolved to the deepest known name)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = module.split(".")[
                    : len(module.split(".")) - node.level + (path.name == "__init__.py")
                ]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if name in known and name != module}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    assert len(found) > 50, "the package folders were not found"
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def test_imports_run_from_the_command_line_down_to_the_library(graph):
    names = {LIBRARY: "library", JOB: "job", LAUNCH: "launcher", COMMAND_LINE: "command line"}
    wrong = [
        f"{module} ({names[layer(module)]}) imports {target} ({names[layer(target)]})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer(target) > layer(module)
    ]
    assert not wrong, "\n".join(wrong)


def test_job_packages_import_only_the_jobs_they_compose(graph):
    wrong = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        if (package := job_package(module))
        for target in sorted(targets)
        if job_package(target) not in (None, package, *JOB_IMPORTS[package])
    ]
    assert not wrong, "\n".join(wrong)


def test_the_launcher_knows_no_workload(graph):
    wrong = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        if layer(module) == LAUNCH
        for target in sorted(targets)
        if layer(target) == JOB or target.startswith(("foundation.train.", "foundation.models."))
    ]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_through_others(graph):
    """No circles: Tarjan's strongly connected components of the module graph are all single modules."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_project_imports_sit_at_the_top_of_modules():
    """A module imports the project's modules at its top; the one exception is a module that imports DeepSpeed
    when loaded (DeepSpeed picks its accelerator at import, so training chooses the device first)."""
    found = modules()
    heavy = {name for name, path in found.items() if "deepspeed" in _top_level_imports(path)}
    wrong = []
    for path in sorted(found.values()):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.ImportFrom)
                    and inner.module
                    and inner.module.startswith("foundation")
                ):
                    if inner.module not in heavy:
                        wrong.append(
                            f"{path.relative_to(REPO)}:{inner.lineno} {node.name}: from {inner.module}"
                        )
                elif isinstance(inner, ast.Import):
                    wrong += [
                        f"{path.relative_to(REPO)}:{inner.lineno} {node.name}: import {alias.name}"
                        for alias in inner.names
                        if alias.name.startswith("foundation") and alias.name not in heavy
                    ]
    assert not wrong, "imports inside functions:\n" + "\n".join(wrong)
