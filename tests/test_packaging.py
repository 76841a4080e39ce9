"""Installing like a user: a wheel built from the checkout, installed into a fresh virtual environment (its
dependencies are those of the environment the test runs in, a virtual environment or the system's Python, so
nothing is downloaded), works from a directory outside the checkout: it is the installed copy that is imported,
every shipped config is found (model names, cluster profiles, `configs/...` paths given on the command line or
inside other configs), and the demo's pipeline runs through the installed commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What a wheel is built from: the package folders and pyproject.toml (not runs/, tests, docs, caches).
NOT_SHIPPED = shutil.ignore_patterns(
    "runs",
    ".git",
    ".cache",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    "tests",
    "docs",
    "bench",
    "examples",
    "scripts",
)

CHECKS = r"""
import sys
from pathlib import Path

import foundation
venv = Path(sys.argv[1]).resolve()
assert Path(foundation.__file__).resolve().is_relative_to(venv), foundation.__file__

from foundation import build_potential
from foundation.config import load_config
from foundation.evals.config import SuiteConfig
from foundation.models.config import available_models
from foundation.resources import configs_dir
from foundation.slurm.profiles import load_profile
from foundation.studies.ablation import load_ablation
from foundation.studies.sweep.config import load_sweep_config
from foundation.studies.sweep.grid import expand_grid
from foundation.train.config import load_train_config

assert configs_dir().resolve().is_relative_to(venv)
build_potential("schnet")
models = available_models()
assert {"schnet", "cgcnn", "mpnn", "torchmd_et", "scalable-xs"} <= set(models), models
for name in models:
    build_potential(name)
assert load_profile("local").name == "local" and load_profile("example-gpu").gpus_per_node > 0
shipped = sorted(p.relative_to(configs_dir()).as_posix() for p in configs_dir().glob("*/*.yaml"))
for rel in shipped:
    path = "configs/" + rel  # as the docs write them, relative to a checkout that is not here
    group = rel.split("/")[0]
    if group == "pretrain":
        load_train_config(path)
    elif group == "finetune":  # a recipe; `foundation finetune --from` gives the parent
        load_train_config(path, ["finetune.parent=releases/parent"])
    elif group == "evals":
        load_config(SuiteConfig, path)
    elif group == "sweeps":
        assert expand_grid(load_sweep_config(path))  # its base_config is a configs/ path too
    elif group == "experiments":
        for objective in load_ablation(path).objectives:
            load_train_config(objective.recipe)
print(f"checked {len(shipped)} shipped configs and {len(models)} models")
"""


def environment_site_dirs() -> list[str]:
    """The site-packages folders of the environment this test runs in (a virtual environment's, the system's)."""
    return [
        p
        for p in sys.path
        if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()
    ]


def _run(cmd, cwd: Path, env: dict, timeout: int = 600) -> str:
    result = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv directory, a working directory outside the checkout, the environment to run it with)."""
    root = tmp_path_factory.mktemp("packaging")
    shutil.copytree(REPO, root / "src", ignore=NOT_SHIPPED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(OMP_NUM_THREADS="1", PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    constraints = REPO / ".cache" / "constraints.txt"
    if constraints.is_file():
        env["PIP_CONSTRAINT"] = str(constraints)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            root / "wheels",
            root / "src",
        ],
        root,
        env,
    )
    [wheel] = (root / "wheels").glob("foundation_mlip-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert (
        "foundation/configs/model/schnet.yaml" in names
        and "foundation/configs/cluster/local.yaml" in names
    )
    assert not [n for n in names if n.startswith(("tests/", "configs/"))]
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], root, env)
    site_packages = _run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        root,
        env,
    ).strip()
    # after the venv's own site-packages (which will hold the wheel): this environment's, .pth files included
    (Path(site_packages) / "test-environment.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in environment_site_dirs())
    )
    _run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--force-reinstall",
            wheel,
        ],
        root,
        env,
    )
    work = root / "work"
    work.mkdir()
    return venv, work, env


@pytest.mark.slow
def test_installed_wheel_imports_itself_and_finds_every_config(installed):
    venv, work, env = installed
    (work / "checks.py").write_text(CHECKS)
    out = _run([venv / "bin" / "python", work / "checks.py", venv], work, env)
    assert "shipped configs" in out


@pytest.mark.slow
def test_installed_wheel_runs_the_demo_pipeline(installed):
    """The stages of `foundation demo` with their own commands, at toy size (the demo itself spends ~8 of its
    ~10 minutes in its eval suite, which reads no shipped file): teacher frames, prep through the submitit-local
    launcher with `--cluster local`, pre-training from `configs/pretrain/...` named relative to a directory that
    has no configs/, release, export and `foundation models`."""
    venv, work, env = installed
    foundation = venv / "bin" / "foundation"
    _run(
        [
            foundation,
            "synth",
            "--out",
            "frames.extxyz",
            "--frames",
            "80",
            "--teacher",
            "emt",
            "--workers",
            "1",
            "--no-progress",
        ],
        work,
        env,
    )
    _run(
        [
            foundation,
            "prep",
            "frames.extxyz",
            "--out",
            "data",
            "--launcher",
            "submitit-local",
            "--cluster",
            "local",
        ],
        work,
        env,
    )
    _run(
        [
            foundation,
            "train",
            "--config",
            "configs/pretrain/efs_derivative.yaml",
            "data.path=data",
            "run_dir=run",
            "train.max_steps=2",
            "train.val_every=2",
            "train.checkpoint_every=2",
            "schedule.warmup_steps=1",
        ],
        work,
        env,
    )
    _run([foundation, "release", "run", "--out", "models/toy"], work, env)
    _run(
        [foundation, "export", "toy", "--out", "toy.pt"],
        work,
        {**env, "FOUNDATION_MODELS": str(work / "models")},
    )
    listing = _run([foundation, "models"], work, {**env, "FOUNDATION_MODELS": str(work / "models")})
    assert "toy" in listing and (work / "toy.pt").is_file()
