"""Molecular dynamics with a released potential in ASE: NVT (Langevin) to equilibrate, then NVE, reporting the
NVE energy drift per atom per ps (the slope of a least-squares line through the total energy) and its
fluctuation. Needs only an installed foundation and a release (directory or a name in FOUNDATION_MODELS).

    python examples/md_ase.py runs/demo/release
    python examples/md_ase.py runs/demo/release --dtype float64 --nve-steps 4000 --json drift.json
    python examples/md_ase.py my-model --structure POSCAR --temperature 600 --timestep 0.5

The default structure is a rattled 108-atom fcc Cu cell (an element of the demo release).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.build import bulk
from ase.io import read
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet

from foundation import FoundationCalculator
from foundation.models.loading import load_potential, open_model


def drift(times_ps: np.ndarray, energies: np.ndarray, natoms: int) -> dict:
    """Slope (eV/atom/ps) of a line fitted to the total energy, and the RMS of the residuals (eV/atom)."""
    slope, intercept = np.polyfit(times_ps, energies, 1)
    residual = energies - (slope * times_ps + intercept)
    return {
        "drift_ev_per_atom_per_ps": float(slope / natoms),
        "fluctuation_rms_ev_per_atom": float(np.sqrt(np.mean(residual**2)) / natoms),
        "max_deviation_ev_per_atom": float(np.abs(energies - energies[0]).max() / natoms),
    }


def run_md(
    calc,
    atoms,
    *,
    temperature: float,
    timestep_fs: float,
    nvt_steps: int,
    nve_steps: int,
    friction_per_fs: float,
    interval: int,
    seed: int,
) -> dict:
    """NVT Langevin for nvt_steps, then NVE (velocity Verlet) for nve_steps; energies every `interval` steps."""
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():  # a molecule in vacuum: no net rotation either
        ZeroRotation(atoms)
    start = time.perf_counter()
    Langevin(
        atoms,
        timestep_fs * units.fs,
        temperature_K=temperature,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    ).run(nvt_steps)
    nvt_time = time.perf_counter() - start
    times, energies, temperatures = [], [], []

    def record():
        times.append(len(times) * interval * timestep_fs / 1000.0)
        energies.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
        temperatures.append(atoms.get_temperature())

    nve = VelocityVerlet(atoms, timestep_fs * units.fs)
    nve.attach(record, interval=interval)
    start = time.perf_counter()
    nve.run(nve_steps)
    nve_time = time.perf_counter() - start
    return {
        "natoms": len(atoms),
        "temperature_K": temperature,
        "timestep_fs": timestep_fs,
        "nvt_steps": nvt_steps,
        "nve_steps": nve_steps,
        "nve_ps": nve_steps * timestep_fs / 1000.0,
        "nve_mean_temperature_K": float(np.mean(temperatures)),
        **drift(np.array(times), np.array(energies), len(atoms)),
        "steps_per_s": (nvt_steps + nve_steps) / (nvt_time + nve_time),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="release directory or model name (FOUNDATION_MODELS)")
    parser.add_argument(
        "--structure", help="structure file (ASE-readable); default: rattled fcc Cu, 108 atoms"
    )
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--timestep", type=float, default=1.0, help="fs (default 1)")
    parser.add_argument("--nvt-steps", type=int, default=500)
    parser.add_argument("--nve-steps", type=int, default=2000)
    parser.add_argument(
        "--friction", type=float, default=0.01, help="Langevin friction, 1/fs (default 0.01)"
    )
    parser.add_argument(
        "--interval", type=int, default=10, help="record the NVE energy every N steps"
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help="precision of the potential (a release is float32; float64 conserves energy better)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the result to this JSON file")
    args = parser.parse_args()

    files = open_model(args.model)
    potential = load_potential(files).to(getattr(torch, args.dtype))
    atoms = (
        read(args.structure) if args.structure else bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    )
    if not args.structure:
        atoms.rattle(0.02, seed=args.seed)
    result = run_md(
        FoundationCalculator(potential),
        atoms,
        temperature=args.temperature,
        timestep_fs=args.timestep,
        nvt_steps=args.nvt_steps,
        nve_steps=args.nve_steps,
        friction_per_fs=args.friction,
        interval=args.interval,
        seed=args.seed,
    )
    result = {
        "model": str(files.path),
        "dtype": args.dtype,
        "torch_threads": torch.get_num_threads(),
        **result,
    }
    print(
        f"{result['natoms']} atoms, {args.dtype}, NVT {args.nvt_steps} + NVE {args.nve_steps} steps of "
        f"{args.timestep} fs ({result['steps_per_s']:.1f} steps/s); NVE mean temperature "
        f"{result['nve_mean_temperature_K']:.0f} K"
    )
    print(
        f"NVE energy drift {result['drift_ev_per_atom_per_ps'] * 1e3:+.4f} meV/atom/ps over {result['nve_ps']} ps; "
        f"fluctuation (RMS) {result['fluctuation_rms_ev_per_atom'] * 1e3:.4f} meV/atom"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
