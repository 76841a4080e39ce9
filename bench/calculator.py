"""Speed of the ASE calculator: MD-like steps on a 64- and a 512-atom cell, and batched `predict` against one
`calculate` per frame in the same run.

Rates are per second of process CPU time on CPU (one thread: what an idle core takes; the development machine is
shared and loaded, so wall time measures the other jobs), wall time on a GPU. One step = move the atoms (a small random displacement, so nothing is cached), then energy, forces and stress from
FoundationCalculator: graph construction (foundation/data/graph.py) and the potential's forward with forces and
stress by autograd. The graph's share of the step is measured separately on the same cells. The batched part labels
64 rattled 64-atom cells with `calc.predict` (atoms-balanced batches) and with `calculate` one by one.

    OMP_NUM_THREADS=1 python bench/calculator.py                      # CPU, writes docs/bench/calculator-cpu.json
    python bench/calculator.py --device cuda --out docs/bench/calculator-cuda.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

from foundation import FoundationCalculator, build_potential
from foundation.data.batch import collate_frames
from foundation.data.schema import Frame

REPO = Path(__file__).resolve().parents[1]
CELLS = {64: (2, 2, 4), 512: (4, 4, 8)}  # repeats of the 4-atom rocksalt NaCl cell (a = 5.64 A)


def cell(natoms: int, seed: int = 0):
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(CELLS[natoms])
    atoms.rattle(0.05, seed=seed)
    return atoms


def best_rate(fn, rounds: int, repeat: int) -> float:
    """Calls per second of this process's CPU time (on a shared, loaded machine the wall clock measures the other
    jobs; with one thread CPU time is what an idle core would take): the best of `rounds` timings of `repeat`
    calls, after one warm-up call. On a GPU, wall time (the CPU waits for the device)."""
    clock = (
        time.perf_counter
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else time.process_time
    )
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = clock()
        for _ in range(repeat):
            fn()
        best = min(best, (clock() - start) / repeat)
    return 1.0 / best


def md_steps(calc: FoundationCalculator, natoms: int, rounds: int, repeat: int) -> dict:
    atoms = cell(natoms)
    atoms.calc = calc
    rng = np.random.default_rng(0)

    def step():
        atoms.positions += rng.normal(0, 1e-3, size=atoms.positions.shape)
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

    frame = Frame(
        numbers=atoms.numbers,
        positions=atoms.positions,
        cell=np.asarray(atoms.cell[:]),
        pbc=atoms.pbc,
        frame_id="x",
        structure_id="x",
    )
    potential = calc.potential
    graph = best_rate(
        lambda: collate_frames(
            [frame],
            potential.cutoff,
            potential.max_neighbours,
            dtype=potential.geometry_dtype,
            device=calc.device,
        ),
        rounds,
        repeat,
    )
    steps = best_rate(step, rounds, repeat)
    return {
        "natoms": natoms,
        "steps_per_s": steps,
        "atom_steps_per_s": steps * natoms,
        "graph_share": steps / graph,
    }


def batched(calc: FoundationCalculator, frames: int, rounds: int) -> dict:
    structures = [cell(64, seed=k) for k in range(frames)]

    def one_by_one():
        for atoms in structures:
            calc.calculate(atoms, ["energy", "forces", "stress"])

    per_frame = best_rate(one_by_one, rounds, 1) * frames
    together = best_rate(lambda: calc.predict(structures, max_atoms=2048), rounds, 1) * frames
    return {
        "frames": frames,
        "natoms": 64,
        "calculate_frames_per_s": per_frame,
        "predict_frames_per_s": together,
        "ratio": together / per_frame,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["scalable-xs", "schnet"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench" / "calculator-cpu.json")
    args = parser.parse_args()
    results = {
        "device": args.device,
        "threads": torch.get_num_threads(),
        "clock": "process CPU time" if args.device == "cpu" else "wall",
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "models": {},
    }
    for name in args.models:
        torch.manual_seed(0)
        calc = FoundationCalculator(build_potential(name), device=args.device)
        rows = [md_steps(calc, n, args.rounds, 10 if n == 64 else 3) for n in (64, 512)]
        row = {
            "parameters": sum(p.numel() for p in calc.potential.parameters()),
            "md": rows,
            "batched": batched(calc, 64, args.rounds),
        }
        results["models"][name] = row
        for r in rows:
            print(
                f"{name:12s} {r['natoms']:4d} atoms: {r['steps_per_s']:8.2f} steps/s "
                f"({r['atom_steps_per_s']:9.0f} atom-steps/s), graph {100 * r['graph_share']:.0f}% of a step"
            )
        b = row["batched"]
        print(
            f"{name:12s} 64 x 64-atom cells: predict {b['predict_frames_per_s']:.1f} frames/s vs calculate "
            f"{b['calculate_frames_per_s']:.1f} frames/s ({b['ratio']:.2f}x)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
