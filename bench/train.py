"""Training engine figures, each against a reference measured in the same run.

1. Engine overhead: one DeepSpeed step (ZeRO 0 and 2) against a plain torch step (AdamW, clip_grad_norm_) of the
   same model on the same batch of real DFT frames; steps alternate in rounds, medians compared (target <= 1.1x).
2. Data wait: a real `run_training` on the real DFT frames of ../shared/data/dft with ONE loader worker (graphs
   and batches built in the worker); the loop's data_wait_fraction after the first log window (target < 10%).
3. Two processes against one on the same global batch: torchrun 2 ranks x 1 micro-batch vs 1 rank x 2 accumulated
   micro-batches; throughput ratio, and their per-step losses compared (they must match within float tolerance).
4. (--device cuda) atoms/s of a ~10M-parameter model (PaiNN, hidden 384, 6 layers) in fp32 and bf16.

    python bench/train.py                         # CPU: sections 1-3
    python bench/train.py --device cuda           # GPU: sections 1 and 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ase.io
import torch
import yaml

from foundation.data.ase_convert import frame_from_atoms
from foundation.data.batch import collate_frames
from foundation.models import build_potential
from foundation.train.config import load_train_config
from foundation.train.distributed import init_distributed, shutdown
from foundation.train.engine import build_engine, set_lr
from foundation.train.loader import model_dtype_batch
from foundation.train.objectives import Objective
from foundation.train.run_layout import RunLayout

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FOUNDATION_SHARED_DATA", REPO.parent / "shared" / "data"))
OUTPUTS = ("energy", "forces", "stress")


def real_frames(limit: int | None = None) -> list:
    frames = []
    for path in sorted((SHARED / "dft").glob("*.xyz")):
        for k, atoms in enumerate(ase.io.iread(path, index=":")):
            if limit is not None and len(frames) == limit:
                return frames
            frames.append(
                frame_from_atoms(
                    atoms,
                    frame_id=f"{path.stem}:{k}",
                    structure_id=f"{path.stem}:{k}",
                    source=path.name,
                )
            )
    return frames


def batch_of(frames: list, max_atoms: int, cutoff: float):
    chosen, total = [], 0
    for f in frames:
        if total + f.natoms > max_atoms:
            break
        chosen.append(f)
        total += f.natoms
    return collate_frames(chosen, cutoff)


def engine_overhead(
    model_name: str,
    overrides: list[str],
    max_atoms: int,
    rounds: int,
    per_round: int,
    device: torch.device,
    precision: str = "fp32",
) -> dict:
    """Median seconds per step: plain torch vs DeepSpeed ZeRO 0 and 2, same model weights and batch."""
    cfg = load_train_config(
        {
            "model": model_name,
            "model_overrides": overrides,
            "engine": {"precision": precision, "grad_clip": 10.0},
        }
    )
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    torch.manual_seed(0)
    base = build_potential(model_name, overrides).train()
    batch = model_dtype_batch(batch_of(real_frames(400), max_atoms, base.cutoff), device, dtype)
    objective = Objective(cfg.objective)

    def loss_of(call):
        out = call(batch, compute=OUTPUTS)
        return objective.loss(objective.errors(out, batch), objective.counts(batch, None))[0]

    plain = build_potential(model_name, overrides).to(device=device, dtype=dtype).train()
    plain.load_state_dict(base.state_dict())
    opt = torch.optim.AdamW(plain.parameters(), lr=1e-4)

    def plain_step():
        opt.zero_grad(set_to_none=True)
        loss_of(plain).backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), 10.0)
        opt.step()

    runners = {"torch": plain_step}
    for stage in (0, 2):
        cfg.engine.zero_stage = stage
        model = build_potential(model_name, overrides)
        model.load_state_dict(base.state_dict())
        engine = build_engine(model.train(), cfg, 1, device, REPO / ".cache")
        set_lr(engine, 1e-4)

        def ds_step(engine=engine):
            engine.backward(loss_of(engine))
            engine.step()

        runners[f"deepspeed_zero{stage}"] = ds_step
    times = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    for step in runners.values():  # warm-up
        step()
    for _ in range(rounds):
        for name, step in runners.items():
            for _ in range(per_round):
                _sync(device)
                t, c = time.perf_counter(), time.process_time()
                step()
                _sync(device)
                times[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
    med = {name: statistics.median(v) for name, v in times.items()}
    med_cpu = {name: statistics.median(v) for name, v in cpu.items()}
    atoms = int(batch.natoms.sum())
    return {
        "model": model_name,
        "overrides": overrides,
        "precision": precision,
        "atoms_per_batch": atoms,
        "parameters": sum(p.numel() for p in base.parameters()),
        "threads": torch.get_num_threads(),
        "median_step_s": med,
        "median_step_cpu_s": med_cpu,
        "atoms_per_s": {k: atoms / v for k, v in med.items()},
        "ratio_vs_torch": {k: v / med["torch"] for k, v in med.items() if k != "torch"},
        "cpu_time_ratio_vs_torch": {
            k: v / med_cpu["torch"] for k, v in med_cpu.items() if k != "torch"
        },
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def prepared_dataset(directory: Path) -> Path:
    from foundation.data.writer import write_dataset

    frames = real_frames()
    val = frames[::20]
    train = [f for k, f in enumerate(frames) if k % 20]
    write_dataset(directory, {"train": train, "val": val}, containers=("lmdb",), shard_size=1000)
    return directory


def run_config(data: Path, run_dir: Path, steps: int, **engine) -> dict:
    return {
        "model": "scalable-xs",
        "run_dir": str(run_dir),
        "data": {"path": str(data), "max_atoms": 256, "num_workers": 1, "val_max_frames": 16},
        "objective": {"energy_weight": 1.0, "forces_weight": 10.0, "stress_weight": 100.0},
        "engine": {"zero_stage": 0, **engine},
        "train": {
            "max_steps": steps,
            "log_every": 5,
            "val_every": steps,
            "checkpoint_every": steps,
            "progress": False,
        },
    }


def _events(run_dir: Path, kind: str = "train") -> list[dict]:
    lines = RunLayout(run_dir).metrics_log.read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["kind"] == kind]


def data_wait(data: Path, work: Path, steps: int) -> dict:
    from foundation.train.runner import run_training

    run_training(load_train_config(run_config(data, work / "wait", steps)))
    events = _events(work / "wait")[1:]  # the first window includes worker start-up
    return {
        "steps": steps,
        "loader_workers": 1,
        "data_wait_fraction": statistics.mean(e["data_wait_fraction"] for e in events),
        "atoms_per_s": statistics.mean(e["atoms_per_s"] for e in events),
    }


def two_vs_one(data: Path, work: Path, steps: int) -> dict:
    results = {}
    for name, nproc, gas in (("one_process_accumulating_2", 1, 2), ("two_processes", 2, 1)):
        cfg = run_config(data, work / name, steps, grad_accum=gas)
        cfg["data"]["num_workers"] = 0
        path = work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        cmd = [sys.executable, "-m", "foundation.cli.main", "train", "--config", str(path)]
        if nproc > 1:
            cmd += ["--launcher", "torchrun", "--nproc-per-node", str(nproc)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(cmd, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
        results[name] = _events(work / name)
    one, two = results["one_process_accumulating_2"], results["two_processes"]
    rate = {k: statistics.mean(e["atoms_per_s"] for e in v[1:]) for k, v in results.items()}
    diffs = [abs(a["loss"] - b["loss"]) / max(abs(b["loss"]), 1e-12) for a, b in zip(two, one)]
    return {
        "steps": steps,
        "atoms_per_s": rate,
        "throughput_ratio_two_over_one": rate["two_processes"] / rate["one_process_accumulating_2"],
        "max_relative_loss_difference": max(diffs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=40, help="training steps of sections 2 and 3")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=4)
    parser.add_argument("--max-atoms", type=int, default=256, help="atoms per batch in section 1")
    parser.add_argument(
        "--sections", default="overhead,wait,two", help="comma-separated: overhead, wait, two"
    )
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    results = {}
    info = init_distributed(args.device)
    try:
        if "overhead" in sections:
            results["engine_overhead"] = engine_overhead(
                "scalable-xs", [], args.max_atoms, args.rounds, args.per_round, info.device
            )
            print(json.dumps(results["engine_overhead"], indent=1), flush=True)
        if args.device == "cuda":
            big = ["backbone.hidden=384", "backbone.layers=6"]
            for precision in ("fp32", "bf16"):
                key = f"gpu_{precision}"
                results[key] = engine_overhead(
                    "scalable-m", big, 4096, args.rounds, args.per_round, info.device, precision
                )
                print(json.dumps(results[key], indent=1), flush=True)
    finally:
        shutdown(info)
    if args.device == "cpu" and sections & {"wait", "two"}:
        with tempfile.TemporaryDirectory(dir=REPO / ".cache") as tmp:
            work = Path(tmp)
            data = prepared_dataset(work / "data")
            if "wait" in sections:
                results["data_wait"] = data_wait(data, work, args.steps)
                print(json.dumps(results["data_wait"], indent=1), flush=True)
            if "two" in sections:
                results["two_vs_one"] = two_vs_one(data, work, args.steps)
                print(json.dumps(results["two_vs_one"], indent=1), flush=True)
    print("SUMMARY " + json.dumps(results))


if __name__ == "__main__":
    main()
