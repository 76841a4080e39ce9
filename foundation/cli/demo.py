"""`foundation demo`: the built-in default, end to end on 2 CPU cores in minutes, with no downloads.

teacher-labelled frames -> sharded dataset -> E/F/S derivative pre-training -> a downstream task inside the
pre-training domain (the teacher's bulk modulus of its own alloys, few labels: a learning curve of the
checkpoint beside a from-scratch twin and the ridge probe, with paired verdicts; Matbench dielectric when its
file is given) + zero-shot errors and bulk moduli on the elements the pre-training data hold -> report ->
release -> the release's ASE calculator relaxes a strained, rattled crystal.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE

from foundation import load_calculator
from foundation.cli.train import exit_code
from foundation.config import load_config
from foundation.data.manifest import MANIFEST_NAME
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.pipeline import format_summary, run_prep
from foundation.data_prep.synth.generate import SynthConfig, synthesize
from foundation.data_prep.synth.properties import teacher_property_dataset
from foundation.evals.config import SuiteConfig
from foundation.evals.paired import size_label
from foundation.evals.release import make_release
from foundation.evals.run import evaluate
from foundation.report import REPORT_HTML, REPORT_MD, RESULTS_JSON
from foundation.resources import config_file
from foundation.train.config import load_train_config
from foundation.train.run_layout import RunLayout
from foundation.train.runner import run_training

RAW = argparse.RawDescriptionHelpFormatter
EPILOG = """examples:
  foundation demo                                    everything into runs/demo (about 6 minutes on 2 idle cores)
  foundation demo --frames 4000 --steps 1500 --out runs/demo-big
  foundation demo --matbench ../shared/data/matbench/matbench_dielectric.json.gz \\
      --matbench-folds ../shared/data/matbench/matbench_v0.1_dielectric_folds.json --matbench-structures 400

Re-running into the same --out resumes: finished stages are kept (the dataset, the training run's checkpoints,
finished eval units); the release is rebuilt."""


@dataclass
class DemoOptions:
    out: Path
    frames: int
    steps: int
    teacher: str
    workers: int
    seed: int
    matbench: str | None
    matbench_folds: str | None
    matbench_structures: int
    task_structures: int = 120
    finetune_epochs: int = 100


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the built-in default: synth -> prep -> pre-train -> eval -> release",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=RAW,
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument(
        "--frames",
        type=int,
        default=1500,
        help="teacher-labelled frames to generate (default 1500)",
    )
    p.add_argument(
        "--steps", type=int, default=600, help="pre-training optimizer steps (default 600)"
    )
    p.add_argument(
        "--teacher",
        choices=("auto", "chgnet", "emt"),
        default="emt",
        help="labelling potential (default emt: fast on 2 cores; chgnet needs the teacher extra, ~0.4 s a frame)",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="processes for generation, prep and eval (default 2)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--matbench", help="a Matbench structure task file (adds it to the eval suite)")
    p.add_argument("--matbench-folds", help="its matbench_v0.1_validation.json-style folds file")
    p.add_argument(
        "--matbench-structures",
        type=int,
        default=300,
        help="training structures per Matbench fold (default 300; 0 = all); test folds stay whole",
    )
    p.add_argument(
        "--task-structures",
        type=int,
        default=120,
        help="alloys labelled with the teacher's bulk modulus for the downstream task (default 120)",
    )
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=100,
        help="most fine-tuning epochs per eval unit (default 100; early stopping after a quarter; docs/results.md, "
        "the demo)",
    )
    p.set_defaults(func=run)


def _stage(number: int, title: str) -> float:
    print(f"\n[{number}/6] {title}", flush=True)
    return time.perf_counter()


def _done(start: float, what: str) -> None:
    print(f"      {what} ({time.perf_counter() - start:.0f} s)", flush=True)


def suite_mapping(opts: DemoOptions) -> dict:
    """The demo's eval suite: the in-domain downstream task (the teacher's bulk modulus of its alloys) as a
    learning curve over few labels, pre-trained beside scratch and the ridge probe, 3 folds x 2 seeds; zero-shot
    bulk moduli of the dcdft crystals of the pre-training elements (the others listed as out of domain) and
    zero-shot errors on the test split."""
    task_folds = 5
    all_train = opts.task_structures * (task_folds - 1) // task_folds
    tasks = [
        {
            "name": "teacher_bulk_modulus",
            "kind": "property",
            "path": "task",
            "property": "bulk_modulus",
            "num_folds": task_folds,
            "folds": [0, 1, 2],
            "train_sizes": [s for s in (12,) if s < all_train] + ["all"],
            "seeds": [opts.seed, opts.seed + 1],
            "probe": True,
        },  # 6 pairs per size: enough for a verdict
        {"name": "dcdft_eos_zeroshot", "kind": "dcdft_eos"},
        {"name": "zeroshot_test_split", "kind": "zeroshot", "split": "test"},
    ]
    if opts.matbench:
        if not opts.matbench_folds:
            raise SystemExit("foundation demo: --matbench needs --matbench-folds")
        tasks.insert(
            0,
            {
                "name": Path(opts.matbench).name.split(".")[0],
                "kind": "matbench",
                "path": str(Path(opts.matbench).resolve()),
                "folds_path": str(Path(opts.matbench_folds).resolve()),
                "folds": [0, 1],
                "max_structures": opts.matbench_structures or None,
            },
        )
    return {
        "name": "demo",
        "data_root": str(opts.out),
        "seeds": [opts.seed],
        "finetune": {
            "max_epochs": opts.finetune_epochs,
            "patience": max(opts.finetune_epochs // 4, 1),
            "batch_size": 8,
            "lr": 2e-3,
            "backbone_lr": 2e-3,
        },
        "tasks": tasks,
    }


def verdict_lines(results_json: Path) -> list[str]:
    """One line per fine-tuning task and training size: MAE of both arms, the paired difference's 95% interval
    and the verdict (what the report says, for the terminal)."""
    lines = []
    for task in json.loads(Path(results_json).read_text())["tasks"]:
        for c in task.get("comparisons") or []:
            lines.append(
                f"{task['name']} n={size_label(c['size'])}: {c['treatment']} {c['treatment_mae']:.4g} vs "
                f"{c['control']} {c['control_mae']:.4g} {task['unit']}; difference {c['mean_difference']:+.3g} "
                f"[{c['ci95'][0]:+.3g}, {c['ci95'][1]:+.3g}]: {c['verdict']}"
            )
    return lines


def relax_check(release: Path) -> str:
    """Relax a strained, rattled crystal (positions and cell) with the release's calculator; return a summary."""
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 2))
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + np.diag([0.03, -0.02, 0.01])), scale_atoms=True)
    atoms.rattle(0.08, seed=0)
    atoms.calc = load_calculator(release)
    e0, f0 = atoms.get_potential_energy(), np.abs(atoms.get_forces()).max()
    FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=0.05, steps=300)
    e1, f1 = atoms.get_potential_energy(), np.abs(atoms.get_forces()).max()
    if not e1 < e0:
        raise RuntimeError(
            f"relaxation with the released calculator did not lower the energy ({e0:.4f} -> {e1:.4f} eV)"
        )
    return (
        f"Cu32 relaxed with FIRE + cell filter: E {e0:.3f} -> {e1:.3f} eV, max|F| {f0:.3f} -> {f1:.3f} eV/A, "
        f"volume {atoms.get_volume() / len(atoms):.2f} A^3/atom"
    )


def run(args: argparse.Namespace) -> int:
    opts = DemoOptions(
        out=Path(args.out).resolve(),
        frames=args.frames,
        steps=args.steps,
        teacher=args.teacher,
        workers=args.workers,
        seed=args.seed,
        matbench=args.matbench,
        matbench_folds=args.matbench_folds,
        matbench_structures=args.matbench_structures,
        task_structures=args.task_structures,
        finetune_epochs=args.finetune_epochs,
    )
    paths = {
        name: opts.out / name for name in ("synth", "data", "task", "pretrain", "eval", "release")
    }
    begin = time.perf_counter()

    start = _stage(1, f"generating {opts.frames} teacher-labelled non-equilibrium frames")
    frames_file = synthesize(
        paths["synth"] / "frames.extxyz",
        SynthConfig(frames=opts.frames, teacher=opts.teacher, seed=opts.seed, workers=opts.workers),
    )
    if not (paths["task"] / MANIFEST_NAME).is_file():
        teacher_property_dataset(
            paths["task"], opts.task_structures, teacher=opts.teacher, seed=opts.seed
        )
    _done(
        start,
        f"wrote {frames_file}; the downstream task: {opts.task_structures} of the teacher's alloys "
        f"with its bulk modulus in {paths['task']}",
    )

    start = _stage(2, "validating, deduplicating, splitting and sharding (LMDB + WebDataset)")
    prep = run_prep(
        PrepConfig(
            inputs=[str(frames_file)],
            out=str(paths["data"]),
            container="both",
            workers=opts.workers,
            required=["energy", "forces", "stress"],
            shard_size=500,
        )
    )
    print(format_summary(prep, str(paths["data"])))
    _done(start, "dataset ready")

    start = _stage(
        3,
        f"pre-training a small PaiNN-family model on E/F/S (derivative forces and stress), {opts.steps} steps",
    )
    train_config = load_train_config(
        config_file("pretrain", "efs_derivative"),
        [
            f"data.path={paths['data']}",
            f"train.max_steps={opts.steps}",
            f"run_dir={paths['pretrain']}",
            f"train.val_every={max(opts.steps // 4, 1)}",
            f"train.checkpoint_every={max(opts.steps // 4, 1)}",
            f"schedule.warmup_steps={max(opts.steps // 20, 1)}",
            f"train.seed={opts.seed}",
        ],
    )
    summary = run_training(train_config)
    if summary.get("stopped"):
        return exit_code(summary)  # SIGTERM/SIGUSR2: checkpointed; a partial run is not evaluated
    val = ", ".join(
        f"{k} {v:.4g}" for k, v in (summary.get("val") or {}).items() if isinstance(v, float)
    )
    _done(start, f"pre-training finished at step {summary['step']}; validation: {val}")

    start = _stage(
        4,
        "learning curve on the teacher's bulk moduli: the checkpoint, a from-scratch twin and the "
        "ridge probe; zero-shot errors; report",
    )
    report, failures = evaluate(
        paths["pretrain"],
        load_config(SuiteConfig, suite_mapping(opts)),
        paths["eval"],
        workers=opts.workers,
        command="foundation demo",
    )
    for key, error in failures:
        print(f"FAILED eval unit {key}:\n{error}", file=sys.stderr)
    for line in verdict_lines(report[RESULTS_JSON]):
        print("      " + line)
    _done(start, f"report written ({len(failures)} failed units)")

    start = _stage(
        5,
        "writing the release bundle (safetensors, config, normalisers, report, model card, SHA256SUMS)",
    )
    shutil.rmtree(paths["release"], ignore_errors=True)
    make_release(paths["pretrain"], paths["release"], report=paths["eval"], name="foundation-demo")
    _done(start, f"release in {paths['release']}")

    start = _stage(6, "checking the release's ASE calculator on a relaxation")
    print("      " + relax_check(paths["release"]))
    _done(start, "calculator checked")

    minutes = (time.perf_counter() - begin) / 60
    print(
        f"\ndemo finished in {minutes:.1f} min. The frames carry a teacher potential's labels ({opts.teacher}), not "
        "DFT: the numbers show the system working, not a model's quality."
    )
    print(
        f"report:  {report[REPORT_HTML]}\n         {report[REPORT_MD]}\nrelease: {paths['release']}\n"
        f"logs:    tensorboard --logdir {RunLayout(paths['pretrain']).tensorboard}"
    )
    return 1 if failures else 0
