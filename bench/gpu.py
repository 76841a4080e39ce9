"""The GPU check, one section per process (bench/gpu.sh runs them all within 8 minutes and merges the parts).

Sections, all on real DFT frames (--data: a folder holding dft/*.xyz, e.g. a copy of ../shared/data):
  agreement   scalable-s trained briefly in fp32, then E/F/S of the validation frames in bf16 and fp64 against fp32
  throughput  atoms/s of the E/F/S training step (forward, forces and stress by autograd with create_graph, loss,
              backward, AdamW) of every scalable size in bf16 at the largest batch that fits (doubling until out of
              memory, a step over --max-step-s, or the section's time), and in fp32 at half that batch
  neighbours  our radius_graph_pbc on the GPU (float64, float32) against vesin-torch on the GPU and vesin on the CPU,
              same edges, all frames; and one large supercell
  efficiency  end-to-end efficiency: `run_training` (DeepSpeed ZeRO 1, bf16, 4,096-atom batches from LMDB shards)
              at 1, 4 and 8 loader workers with data.graphs worker and device, its atoms/s (after the first log
              window) over the bare step's at the same batch and precision, and its data-wait fraction
  mace        MACE (mace-torch, 64 channels L=0 and L=1) atoms/s with the same step in fp32, beside ours (xs, s)
              at the same batch (run with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, in its own process)
--cpu-smoke runs every section on the CPU with tiny sizes (the script's own test where no GPU is lent).

    python bench/gpu.py --section agreement --data .gpu_data --parts /tmp/gpu_parts
    python bench/gpu.py --report /tmp/gpu_parts --out $OUT          # gpu.json, gpu.md, efficiency.json
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from time_to_accuracy import (  # bench/
    CUTOFF,
    Mace,
    Ours,
    load_split,
    normalization,
    train_step,
)
from torch.utils.benchmark import Timer

from foundation.data.batch import AtomsBatch, collate_frames, with_graph
from foundation.models import build_potential
from foundation.train.config import ObjectiveConfig
from foundation.train.loader import model_dtype_batch
from foundation.train.objectives import Objective

SECTIONS = ("agreement", "throughput", "neighbours", "efficiency", "mace")
SIZES = ("scalable-xs", "scalable-s", "scalable-m", "scalable-l", "scalable-xl")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}
OBJECTIVE = Objective(ObjectiveConfig(energy_weight=1.0, forces_weight=10.0, stress_weight=100.0))
# issue 30's target for a training run: at least this share of the bare step's atoms/s, data wait under this
# share of the step time, with at most this many loader workers per GPU
TARGET_EFFICIENCY, TARGET_DATA_WAIT, TARGET_WORKERS = 0.85, 0.05, 4


def batch_frames(frames: list, atoms: int, start: int = 0) -> list:
    """Frames cycled from `start` until they hold at least `atoms` atoms."""
    chosen, total, k = [], 0, start
    while total < atoms:
        chosen.append(frames[k % len(frames)])
        total += chosen[-1].natoms
        k += 1
    return chosen


def gpu_batch(frames: list, atoms: int, device: torch.device, start: int = 0) -> AtomsBatch:
    """A batch of about `atoms` atoms (frames cycled from `start`), its graph built on `device` in float64."""
    return collate_frames(batch_frames(frames, atoms, start), CUTOFF, device=device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_rate(runner, batch: AtomsBatch, device: torch.device, steps: int) -> dict:
    """Seconds per training step (median of `steps` after two warm-ups) and atoms/s; peak memory on CUDA."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        train_step(runner, batch, OBJECTIVE)
    times = []
    for _ in range(steps):
        sync(device)
        t = time.perf_counter()
        train_step(runner, batch, OBJECTIVE)
        sync(device)
        times.append(time.perf_counter() - t)
    median = float(np.median(times))
    out = {
        "atoms": int(batch.natoms.sum()),
        "edges": int(batch.edge_index.shape[1]),
        "step_s": median,
        "atoms_per_s": int(batch.natoms.sum()) / median,
    }
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def ours_runner(size: str, norm: dict, device: torch.device, dtype: torch.dtype) -> Ours:
    runner = Ours(size, norm)
    runner.model.to(device=device, dtype=dtype)  # same Parameter objects: the optimiser follows
    return runner


def largest_batch(
    make_runner,
    frames: list,
    device: torch.device,
    args,
    dtype: torch.dtype,
    start_atoms: int,
    budget_s: float,
) -> dict:
    """Double the batch from start_atoms while it fits in memory, a step stays under --max-step-s and the budget
    lasts; the last size that ran is the result (with every size tried)."""
    began, tried, best, atoms, stop = time.perf_counter(), [], None, start_atoms, "time budget"
    runner = make_runner()
    geometry = torch.promote_types(dtype, torch.float32)
    while True:
        batch = None
        try:
            batch = model_dtype_batch(gpu_batch(frames, atoms, device), device, geometry)
            best = step_rate(runner, batch, device, args.steps)
            tried.append(best)
        except torch.OutOfMemoryError:
            tried.append({"atoms": atoms, "result": "out of memory"})
            stop = "out of memory"
        finally:
            batch = None
            runner.optimizer.zero_grad(set_to_none=True)
            free(device)
        if stop == "out of memory":
            break
        if best["step_s"] > args.max_step_s:
            stop = "step time"
            break
        atoms *= 2
        if atoms > args.max_atoms:
            stop = "max atoms"
            break
        if time.perf_counter() - began > budget_s:
            break
    return {"best": best, "tried": tried, "stopped_by": stop}


def section_agreement(args, device: torch.device) -> dict:
    train, val = load_split(args.data / "dft", args.val_frames)
    norm = normalization(train)
    runner = ours_runner("scalable-s", norm, device, torch.float32)
    began, steps, k = time.perf_counter(), 0, 0
    while time.perf_counter() - began < args.train_s:
        batch = model_dtype_batch(
            gpu_batch(train, args.batch_atoms, device, start=k), device, torch.float32
        )
        k += len(batch.natoms)
        train_step(runner, batch, OBJECTIVE)
        steps += 1
    val_batch = gpu_batch(val, sum(f.natoms for f in val), device)  # every validation frame once
    outputs = {}
    for name, dtype in DTYPES.items():
        model = copy.deepcopy(runner.model).to(dtype=dtype).eval()
        out = model(
            model_dtype_batch(val_batch, device, model.geometry_dtype),
            compute=("energy", "forces", "stress"),
        )
        outputs[name] = {k: v.detach().double() for k, v in out.items()}
    natoms = val_batch.natoms.double()

    def mae(a: dict, b: dict) -> dict:
        return {
            "energy_per_atom_meV": float(((a["energy"] - b["energy"]) / natoms).abs().mean() * 1e3),
            "forces_meV_per_A": float((a["forces"] - b["forces"]).abs().mean() * 1e3),
            "stress_meV_per_A3": float((a["stress"] - b["stress"]).abs().mean() * 1e3),
        }

    labels = {
        "energy": val_batch.energy.double(),
        "forces": val_batch.forces.double(),
        "stress": val_batch.stress.double(),
    }
    return {
        "model": "scalable-s",
        "trained_steps": steps,
        "train_s": args.train_s,
        "val_frames": len(val),
        "val_atoms": int(natoms.sum()),
        "mae_bf16_vs_fp32": mae(outputs["bf16"], outputs["fp32"]),
        "mae_fp32_vs_fp64": mae(outputs["fp32"], outputs["fp64"]),
        "mae_fp32_vs_dft_labels": mae(outputs["fp32"], labels),
    }


def section_throughput(args, device: torch.device) -> dict:
    train, _ = load_split(args.data / "dft", args.val_frames)
    norm = normalization(train)
    out = {"sizes": {}}
    for size in args.sizes:
        bf16 = largest_batch(
            lambda: ours_runner(size, norm, device, torch.bfloat16),
            train,
            device,
            args,
            torch.bfloat16,
            args.start_atoms,
            args.size_s,
        )
        row = {
            "parameters": sum(p.numel() for p in build_potential(size).parameters()),
            "bf16": bf16,
        }
        if bf16["best"]:
            half = max(bf16["best"]["atoms"] // 2, 1)
            row["fp32"] = largest_batch(
                lambda: ours_runner(size, norm, device, torch.float32),
                train,
                device,
                args,
                torch.float32,
                half,
                0.0 if args.cpu_smoke else args.size_s / 3,
            )
        out["sizes"][size] = row
        print(size, json.dumps(row), flush=True)
        save(args, "throughput", out)  # what is done survives the section's time limit
    return out


def section_neighbours(args, device: torch.device) -> dict:
    import neighbours  # bench/neighbours.py

    frames = neighbours.load_frames(args.data / "dft")[: 200 if args.cpu_smoke else None]
    rows = {
        "vesin (C++), CPU, per frame, 1 thread": neighbours.timed(
            lambda: neighbours.vesin_edges(frames, CUTOFF, 1), args.repeats
        )
    }
    if device.type == "cuda":
        rows.update(
            neighbours.gpu_rows(
                frames, CUTOFF, argparse.Namespace(batch_size=64, repeats=args.repeats, threads=1)
            )
        )
    else:
        rows["ours, CPU, one batch"] = neighbours.timed(
            lambda: neighbours.ours([neighbours.as_tensors(frames)], CUTOFF), args.repeats
        )
    edges = rows["vesin (C++), CPU, per frame, 1 thread"][2]
    neighbours.check_counts(rows, edges)
    large = frames[3].repeat(args.supercell)
    large_rows = {
        "vesin (C++), CPU, 1 thread": neighbours.timed(
            lambda: neighbours.vesin_edges([large], CUTOFF, 1), args.repeats
        )
    }
    dtype_device = [(device, torch.float64), (device, torch.float32)]
    for dev, dtype in dtype_device:
        tensors = [neighbours.as_tensors([large], str(dev), dtype)]
        neighbours.ours(tensors, CUTOFF)  # warm-up
        large_rows[f"ours, {dev.type}, {str(dtype)[6:]}, cell list"] = neighbours.timed(
            lambda: neighbours.ours(tensors, CUTOFF), args.repeats, lambda: sync(dev)
        )
    try:
        systems = neighbours.torch_systems([large], str(device))
        neighbours.vesin_torch_edges(systems, CUTOFF, 1)
        large_rows[f"vesin-torch, {device.type}"] = neighbours.timed(
            lambda: neighbours.vesin_torch_edges(systems, CUTOFF, 1),
            args.repeats,
            lambda: sync(device),
        )
    except (RuntimeError, ValueError) as exc:
        large_rows["vesin-torch error"] = (float("nan"), float("nan"), str(exc)[:200])
    neighbours.check_counts(
        {k: v for k, v in large_rows.items() if "error" not in k},
        large_rows["vesin (C++), CPU, 1 thread"][2],
    )
    return {
        "frames": len(frames),
        "atoms": sum(len(a) for a in frames),
        "edges": edges,
        "rows": neighbours.as_json(rows, "vesin (C++), CPU, per frame, 1 thread"),
        "supercell": {
            "repeats": args.supercell,
            "atoms": len(large),
            "rows": {
                k: {"wall_s": w, "cpu_s": c, "edges": e} for k, (w, c, e) in large_rows.items()
            },
        },
    }


def deepspeed_run(args, data: Path, run_dir: Path, workers: int, graphs: str, device) -> dict:
    """One `run_training` (scalable-s, ZeRO 1, bf16) of args.ds_steps steps: atoms/s and data-wait fraction of its
    log windows after the first (which holds the loader's and the engine's start)."""
    import train as train_bench  # bench/train.py

    from foundation.train.config import load_train_config
    from foundation.train.runner import run_training

    cfg = train_bench.run_config(
        data, run_dir, args.ds_steps, zero_stage=1, precision="bf16", device=device.type
    )
    cfg["model"] = "scalable-s"
    cfg["data"].update(max_atoms=args.batch_atoms, num_workers=workers, graphs=graphs)
    cfg["train"]["log_every"] = max(args.ds_steps // 6, 1)
    began = time.perf_counter()
    run_training(load_train_config(cfg))
    wall = time.perf_counter() - began
    events = train_bench._events(run_dir)
    later = events[1:] or events
    return {
        "steps": args.ds_steps,
        "wall_s": wall,
        "atoms_per_s": float(np.mean([e["atoms_per_s"] for e in later])),
        "data_wait_fraction": float(np.mean([e["data_wait_fraction"] for e in later])),
        "windows": [
            {k: e[k] for k in ("step", "atoms_per_s", "data_wait_fraction") if k in e}
            for e in events
        ],
    }


def section_efficiency(args, device: torch.device) -> dict:
    """The bare bf16 step of scalable-s at args.batch_atoms (and the time to build that batch's graph on the
    device), then DeepSpeed runs per loader workers and data.graphs, each with its efficiency = its atoms/s over
    the bare step's; what is done is saved after each run, and runs that the time budget cannot hold are skipped."""
    os.environ.setdefault("FOUNDATION_SHARED_DATA", str(args.data))
    import train as train_bench  # bench/train.py (reads FOUNDATION_SHARED_DATA at import)

    train, _ = load_split(args.data / "dft", args.val_frames)
    chosen = batch_frames(train, args.batch_atoms)
    bare_batch = model_dtype_batch(
        gpu_batch(train, args.batch_atoms, device), device, torch.float32
    )
    norm = normalization(train)
    out = {
        "model": "scalable-s",
        "zero_stage": 1,
        "precision": "bf16",
        "max_atoms": args.batch_atoms,
        "bare_step": step_rate(
            ours_runner("scalable-s", norm, device, torch.bfloat16), bare_batch, device, args.steps
        ),
        "runs": [],
    }
    graphless = collate_frames(chosen, CUTOFF, graph=False).to(device)

    edges = with_graph(graphless, CUTOFF).edge_index.shape[1]  # (and a warm-up)
    timer = Timer(
        "with_graph(batch, cutoff)",
        globals=dict(with_graph=with_graph, batch=graphless, cutoff=CUTOFF),
    )
    out["graph_on_device"] = {
        "atoms": int(graphless.natoms.sum()),
        "edges": int(edges),
        "wall_s": timer.timeit(args.repeats).median,  # CUDA synchronised by the timer
    }
    bare = out["bare_step"]["atoms_per_s"]
    free(device)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = train_bench.prepared_dataset(Path(tmp) / "data")
        for workers in args.efficiency_workers:
            for graphs in ("worker", "device"):
                row = {"loader_workers": workers, "graphs": graphs}
                walls = [r["wall_s"] for r in out["runs"] if "wall_s" in r]
                left = args.efficiency_s - (time.perf_counter() - began)
                if walls and left < 1.2 * max(walls):
                    row["skipped"] = f"time budget ({left:.0f} s left)"
                else:
                    try:
                        row.update(
                            deepspeed_run(
                                args,
                                data,
                                Path(tmp) / f"run-{workers}-{graphs}",
                                workers,
                                graphs,
                                device,
                            )
                        )
                        row["efficiency"] = row["atoms_per_s"] / bare
                    except Exception as exc:  # one failed run costs only its row
                        row["error"] = f"{type(exc).__name__}: {exc}"[:400]
                out["runs"].append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "windows"}), flush=True)
                save(args, "efficiency", out)
                free(device)
    return out


def section_mace(args, device: torch.device) -> dict:
    train, _ = load_split(args.data / "dft", args.val_frames)
    norm = normalization(train)
    batch = model_dtype_batch(gpu_batch(train, args.mace_atoms, device), device, torch.float32)
    avg = batch.edge_index.shape[1] / len(batch.numbers)
    out = {"atoms": int(batch.natoms.sum()), "precision": "fp32"}
    for name in args.mace_sizes:
        channels, lmax = (int(x) for x in name.split("-L"))
        runner = Mace((channels, lmax), norm, sorted(norm["element_references"]), avg)
        runner.model.to(device)
        out[f"mace-{name}"] = {
            "parameters": sum(p.numel() for p in runner.model.parameters()),
            **step_rate(runner, batch, device, args.steps),
        }
        print(name, out[f"mace-{name}"], flush=True)
        runner = None
        free(device)
    for size in ("scalable-xs", "scalable-s"):
        runner = ours_runner(size, norm, device, torch.float32)
        out[size] = {
            "parameters": sum(p.numel() for p in runner.model.parameters()),
            **step_rate(runner, batch, device, args.steps),
        }
    return out


def save(args, section: str, result: dict) -> None:
    args.parts.mkdir(parents=True, exist_ok=True)
    (args.parts / f"{section}.json").write_text(json.dumps(result, indent=1))


def report(parts: Path, out: Path) -> None:
    """Merge the parts into gpu.json and a markdown table gpu.md."""
    result = {"device": None, "sections": {}}
    for section in SECTIONS:
        path = parts / f"{section}.json"
        result["sections"][section] = (
            json.loads(path.read_text()) if path.exists() else {"error": "no result"}
        )
    meta = parts / "meta.json"
    if meta.exists():
        result.update(json.loads(meta.read_text()))
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(result, indent=1))
    efficiency = {k: result.get(k) for k in ("device", "torch", "date")}
    efficiency.update(result["sections"]["efficiency"])
    for run in efficiency.get("runs", []):
        run.pop("windows", None)
    (out / "efficiency.json").write_text(json.dumps(efficiency, indent=1))
    (out / "gpu.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    s = r["sections"]
    lines = [f"GPU check: {r.get('device')}, torch {r.get('torch')}, {r.get('date')}", ""]
    a = s["agreement"]
    if "mae_bf16_vs_fp32" in a:
        lines += [
            "| E/F/S agreement (scalable-s, validation frames) | energy meV/atom | forces meV/A | stress meV/A^3 |",
            "|---|---:|---:|---:|",
        ]
        for key in ("mae_bf16_vs_fp32", "mae_fp32_vs_fp64", "mae_fp32_vs_dft_labels"):
            v = a[key]
            lines.append(
                f"| {key[4:].replace('_', ' ')} | {v['energy_per_atom_meV']:.3g} | "
                f"{v['forces_meV_per_A']:.3g} | {v['stress_meV_per_A3']:.3g} |"
            )
        lines.append("")
    t = s["throughput"]
    if "error" not in t:
        lines += [
            "| size | parameters | bf16 batch (atoms) | bf16 atoms/s | peak GiB | stopped by | fp32 batch | "
            "fp32 atoms/s |",
            "|---|---:|---:|---:|---:|---|---:|---:|",
        ]
        for size, row in t["sizes"].items():
            b, f = row["bf16"]["best"] or {}, (row.get("fp32") or {}).get("best") or {}
            lines.append(
                f"| {size} | {row['parameters']:,} | {b.get('atoms', '-')} | {b.get('atoms_per_s', 0):,.0f} | "
                f"{b.get('peak_memory_gib', float('nan')):.1f} | {row['bf16']['stopped_by']} | "
                f"{f.get('atoms', '-')} | {f.get('atoms_per_s', 0):,.0f} |"
            )
        lines.append("")
    n = s["neighbours"]
    if "rows" in n:
        lines += [
            f"| neighbour list, {n['frames']} frames, {n['edges']:,} edges at 5 A | wall s | vs vesin CPU |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {k} | {v['wall_s']:.4f} | {v['speed_vs_vesin_wall']:.1f}x |"
            for k, v in n["rows"].items()
        ]
        lines += [
            "",
            f"| supercell, {n['supercell']['atoms']:,} atoms | wall s | edges |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {k} | {v['wall_s']:.4f} | {v['edges']} |" for k, v in n["supercell"]["rows"].items()
        ]
        lines.append("")
    lines += efficiency_lines(s["efficiency"])
    m = s["mace"]
    if "atoms" in m:
        lines += [
            f"| E/F/S training step, fp32, {m['atoms']} atoms | parameters | step s | atoms/s |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {k} | {v['parameters']:,} | {v['step_s']:.3f} | {v['atoms_per_s']:,.0f} |"
            for k, v in m.items()
            if isinstance(v, dict)
        ]
        lines.append("")
    errors = [f"- {k}: {v['error']}" for k, v in s.items() if "error" in v]
    return "\n".join(lines + (["Sections without a result:"] + errors if errors else [])) + "\n"


def efficiency_lines(e: dict) -> list[str]:
    """The efficiency table (markdown) and whether issue 30's target is met."""
    if "bare_step" not in e:
        return []
    bare, graph = e["bare_step"], e.get("graph_on_device", {})
    lines = [
        f"End-to-end efficiency ({e['model']}, ZeRO {e['zero_stage']}, {e['precision']}, {e['max_atoms']}-atom "
        f"batches): bare step {bare['atoms_per_s']:,.0f} atoms/s ({bare['atoms']} atoms, {bare['edges']:,} edges); "
        f"its graph built on the device in {1e3 * graph.get('wall_s', float('nan')):.1f} ms",
        "",
        "| loader workers | data.graphs | atoms/s | efficiency (run / bare step) | data wait | wall s |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    met = []
    for r in e["runs"]:
        if "efficiency" not in r:
            reason = r.get("skipped") or r.get("error", "no result")
            lines.append(f"| {r['loader_workers']} | {r['graphs']} | - | - | - | {reason} |")
            continue
        lines.append(
            f"| {r['loader_workers']} | {r['graphs']} | {r['atoms_per_s']:,.0f} | {r['efficiency']:.2f} | "
            f"{100 * r['data_wait_fraction']:.1f}% | {r['wall_s']:.0f} |"
        )
        if (
            r["efficiency"] >= TARGET_EFFICIENCY
            and r["data_wait_fraction"] < TARGET_DATA_WAIT
            and r["loader_workers"] <= TARGET_WORKERS
        ):
            met.append(f"{r['loader_workers']} workers, graphs {r['graphs']}")
    lines += [
        "",
        f"Target (>= {TARGET_EFFICIENCY} of the bare step, data wait < {100 * TARGET_DATA_WAIT:.0f}%, <= "
        f"{TARGET_WORKERS} workers): " + ("met by " + "; ".join(met) if met else "not met"),
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", choices=SECTIONS)
    parser.add_argument("--report", type=Path, help="merge the parts in this folder (into --out)")
    parser.add_argument("--out", type=Path, help="where --report writes gpu.json and gpu.md")
    parser.add_argument("--parts", type=Path, default=Path("/tmp/gpu_parts"))
    parser.add_argument(
        "--data", type=Path, default=Path(".gpu_data"), help="folder holding dft/*.xyz"
    )
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="every section on the CPU with tiny sizes"
    )
    args = parser.parse_args()
    if args.report:
        return report(args.report, args.out or args.report)
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    small = args.cpu_smoke
    settings = dict(
        val_frames=8 if small else 300,
        train_s=3 if small else 15,
        batch_atoms=128 if small else 4096,
        sizes=SIZES[:2] if small else SIZES,
        start_atoms=64 if small else 4096,
        max_atoms=256 if small else 2**21,
        max_step_s=1.5 if small else 4.0,
        size_s=5 if small else 16,
        steps=1 if small else 3,
        repeats=1 if small else 3,
        supercell=4 if small else 24,
        ds_steps=6 if small else 60,
        efficiency_workers=(1, 2) if small else (1, 4, 8),
        efficiency_s=150 if small else 160,  # for the DeepSpeed runs; each starts only if it fits
        mace_atoms=64 if small else 4096,
        mace_sizes=("64-L0",) if small else ("64-L0", "64-L1", "128-L1"),
    )
    for key, value in settings.items():
        setattr(args, key, value)
    if args.section is None:
        raise SystemExit("--section or --report is required")
    began = time.perf_counter()
    result = globals()[f"section_{args.section}"](args, device)
    result["section_wall_s"] = time.perf_counter() - began
    save(args, args.section, result)
    print(f"{args.section}: done in {result['section_wall_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
