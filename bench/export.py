"""Speed of the exported TorchScript module (foundation export) against the eager ASE calculator, in the same run
on the same cells: MD-like steps (move the atoms a little, then energy, forces and stress) on a 64- and a
512-atom rocksalt cell, for the demo release's architecture (scalable-xs: PaiNN, 48 wide, 4 layers) and SchNet
(configs/model/schnet.yaml). Speed does not depend on the weights, so untrained models are timed (a release gives
the same numbers: pass --release DIR to time one).

    OMP_NUM_THREADS=1 python bench/export.py                    # writes docs/bench/export-cpu.json
    python bench/export.py --release runs/demo/release --models

Eager = FoundationCalculator (graph by foundation/data/graph.py, forward, forces and stress by autograd);
exported = the TorchScript module called directly with tensors (its own neighbour search inside).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

from foundation import FoundationCalculator, build_potential
from foundation.export import script_potential

REPO = Path(__file__).resolve().parents[1]
CELLS = {
    64: (2, 2, 2),
    512: (4, 4, 4),
}  # repeats of the 8-atom cubic rocksalt NaCl cell (a = 5.64 A)


def cell(natoms: int, seed: int = 0):
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(CELLS[natoms])
    atoms.rattle(0.05, seed=seed)
    return atoms


def rate(step, rounds: int, repeat: int, warmup: int = 3) -> tuple[float, float]:
    """(steps per CPU second, steps per wall-clock second): the best of `rounds` timings of `repeat` steps, after
    `warmup` steps (TorchScript optimises its graph during the first calls). On one thread the CPU-time rate is what
    the machine would give when idle; the wall-clock rate also counts the time other processes took the core."""
    for _ in range(warmup):
        step()
    best_cpu = best_wall = float("inf")
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(repeat):
            step()
        best_cpu = min(best_cpu, (time.process_time() - cpu) / repeat)
        best_wall = min(best_wall, (time.perf_counter() - wall) / repeat)
    return 1.0 / best_cpu, 1.0 / best_wall


def compare(potential, natoms: int, rounds: int, repeat: int) -> dict:
    atoms = cell(natoms)
    atoms.calc = FoundationCalculator(potential)
    exported = script_potential(potential)
    rng = np.random.default_rng(0)

    def eager_step():
        atoms.positions += rng.normal(0, 1e-3, size=atoms.positions.shape)
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

    numbers, cell_t, pbc = (
        torch.tensor(atoms.numbers),
        torch.tensor(np.asarray(atoms.cell[:])),
        torch.tensor(atoms.pbc),
    )

    def exported_step():
        atoms.positions += rng.normal(0, 1e-3, size=atoms.positions.shape)
        out = exported(numbers, torch.from_numpy(atoms.positions), cell_t, pbc)
        out["forces"].numpy(), float(out["energy"])

    eager, eager_wall = rate(eager_step, rounds, repeat)
    scripted, scripted_wall = rate(exported_step, rounds, repeat)
    out = exported(numbers, torch.from_numpy(atoms.positions), cell_t, pbc)
    forces_diff = float(np.abs(out["forces"].numpy() - atoms.get_forces()).max())
    return {
        "natoms": natoms,
        "eager_steps_per_cpu_s": eager,
        "exported_steps_per_cpu_s": scripted,
        "exported_over_eager": scripted / eager,
        "eager_steps_per_wall_s": eager_wall,
        "exported_steps_per_wall_s": scripted_wall,
        "max_abs_force_difference": forces_diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="*", default=["scalable-xs", "schnet"], help="model configs to time"
    )
    parser.add_argument("--release", help="also time this release directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "export-cpu.json"))
    args = parser.parse_args()
    models = {name: build_potential(name) for name in args.models}
    if args.release:
        from foundation.models.loading import load_potential

        models[Path(args.release).name] = load_potential(args.release)
    rows = []
    for name, potential in models.items():
        potential.eval()
        for natoms in CELLS:
            row = {"model": name, **compare(potential, natoms, args.rounds, args.repeat)}
            rows.append(row)
            print(
                f"{name:12s} {natoms:4d} atoms: eager {row['eager_steps_per_cpu_s']:7.2f} steps/s, exported "
                f"{row['exported_steps_per_cpu_s']:7.2f} steps/s ({row['exported_over_eager']:.2f}x) per CPU second; "
                f"max |dF| {row['max_abs_force_difference']:.1e} eV/A",
                flush=True,
            )
    result = {
        "command": " ".join(["OMP_NUM_THREADS=1 python bench/export.py", *sys.argv[1:]]),
        "device": "cpu",
        "load_average_1min": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cell": "rattled rocksalt NaCl, a = 5.64 A",
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
