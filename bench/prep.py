"""Data preparation: throughput of `foundation prep` (extxyz -> LMDB) on the real DFT frames beside a bare
`ase.io.iread` parse and beside the ASE-database route (iread + ase.db write), measured in one run; and peak
memory of whole runs on 10k versus 200k synthetic frames, for extxyz and for an MPtrj-layout JSON.

    python bench/prep.py [--data ../shared/data] [--repeat 3] [--small 10000] [--large 200000] [--skip-memory]

Rates are frames per CPU-second of the one process doing the work (= frames/s per core; the machine may be
shared, CPU time is what a busy neighbour disturbs least); wall-clock rates are printed beside them.
Targets: pipeline >= 0.7x the bare parse and >= 2x the ASE-database route; peak RSS at --large within 20%
of --small. Peak memory is each run's own ru_maxrss, measured in a fresh subprocess (workers=1: chunk tasks,
merge and statistics in that one process).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import ase.db
import ase.io
import numpy as np
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.pipeline import run_prep
from foundation.data_prep.readers.base import EV_PER_A3_IN_GPA

REPO = Path(__file__).resolve().parents[1]
ELEMENTS = [
    "H",
    "Li",
    "C",
    "N",
    "O",
    "F",
    "Na",
    "Mg",
    "Al",
    "Si",
    "P",
    "S",
    "Cl",
    "K",
    "Ca",
    "Ti",
    "Fe",
    "Cu",
    "Zn",
]


def timed(fn) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of fn()."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def bare_parse(path: Path) -> None:
    for _ in ase.io.iread(str(path), index=":", format="extxyz"):
        pass


def ase_db_route(path: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    with ase.db.connect(str(target)) as db:  # one transaction: the fast way to fill an ASE database
        for atoms in ase.io.iread(str(path), index=":", format="extxyz"):
            db.write(atoms)


def pipeline(path: Path, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    run_prep(
        PrepConfig(inputs=[str(path)], out=str(out), container="lmdb", workers=1, progress=False)
    )


def throughput(data: Path, work: Path, repeat: int) -> dict:
    source = work / "dft-all.xyz"
    with open(source, "wb") as fh:
        for part in sorted((data / "dft").glob("*.xyz")):
            fh.write(part.read_bytes())
    frames = source.read_text().count("Properties=")
    routes = {
        "bare ase.io.iread parse": lambda: bare_parse(source),
        "iread + ASE db write": lambda: ase_db_route(source, work / "frames.db"),
        "foundation prep -> LMDB": lambda: pipeline(source, work / "prep-out"),
    }
    best = {name: (float("inf"), float("inf")) for name in routes}
    for _ in range(repeat):  # interleaved, best of `repeat` for each route
        for name, fn in routes.items():
            cpu, wall = timed(fn)
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    rates = {name: (frames / cpu, frames / wall) for name, (cpu, wall) in best.items()}
    return {"frames": frames, "rates": rates}


def synthetic_frames(n: int, seed: int = 0):
    """(structure_id, frame_id, symbols, cell, positions, forces, energy, stress) of n plausible frames."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        natoms = int(rng.integers(4, 17))
        k = int(np.ceil(natoms ** (1 / 3)))
        a = 2.3 * k
        grid = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)[:natoms]
        cell = np.diag([a, a, a]) + rng.normal(0, 0.05, (3, 3))
        positions = ((grid + 0.5) / k + rng.normal(0, 0.02, (natoms, 3))) @ cell
        symbols = [ELEMENTS[j] for j in rng.integers(0, len(ELEMENTS), natoms)]
        stress = rng.normal(0, 0.01, (3, 3))
        yield (
            f"syn-{i // 5}",
            f"syn-{i}",
            symbols,
            cell,
            positions,
            rng.normal(0, 0.5, (natoms, 3)),
            float(-4.0 * natoms + rng.normal()),
            (stress + stress.T) / 2,
        )


def write_synthetic_extxyz(path: Path, n: int) -> None:
    with open(path, "w") as fh:
        for sid, fid, symbols, cell, pos, forces, energy, stress in synthetic_frames(n):
            lattice = " ".join(f"{x:.8f}" for x in cell.ravel())
            s = " ".join(f"{x:.8g}" for x in stress.ravel())
            fh.write(
                f'{len(symbols)}\nLattice="{lattice}" Properties=species:S:1:pos:R:3:forces:R:3 '
                f'structure_id={sid} frame_id={fid} energy={energy:.8f} stress="{s}" pbc="T T T"\n'
            )
            fh.writelines(
                f"{sym} {p[0]:.8f} {p[1]:.8f} {p[2]:.8f} {f[0]:.8f} {f[1]:.8f} {f[2]:.8f}\n"
                for sym, p, f in zip(symbols, pos, forces)
            )


def write_synthetic_mptrj(path: Path, n: int) -> None:
    """The MPtrj figshare layout, written material by material (stress in kBar with VASP's sign)."""
    with open(path, "w") as fh:
        fh.write("{")
        material, frames = None, {}

        def flush(first: bool) -> None:
            fh.write(("" if first else ", ") + json.dumps(material) + ": " + json.dumps(frames))

        first = True
        for sid, fid, symbols, cell, pos, forces, energy, stress in synthetic_frames(n):
            if sid != material and frames:
                flush(first)
                first, frames = False, {}
            material = sid
            inverse = np.linalg.inv(cell)
            sites = [
                {
                    "species": [{"element": s, "occu": 1}],
                    "abc": (p @ inverse).tolist(),
                    "xyz": p.tolist(),
                    "label": s,
                    "properties": {},
                }
                for s, p in zip(symbols, pos)
            ]
            frames[fid] = {
                "structure": {
                    "@module": "pymatgen.core.structure",
                    "@class": "Structure",
                    "charge": 0,
                    "lattice": {"matrix": cell.tolist(), "pbc": [True, True, True]},
                    "properties": {},
                    "sites": sites,
                },
                "uncorrected_total_energy": energy,
                "corrected_total_energy": energy,
                "energy_per_atom": energy / len(symbols),
                "ef_per_atom": 0.0,
                "force": forces.tolist(),
                "stress": (-stress * EV_PER_A3_IN_GPA * 10.0).tolist(),
                "magmom": None,
                "bandgap": 0.0,
                "mp_id": sid,
            }
        if frames:
            flush(first)
        fh.write("}")


_CHILD = (
    "import resource, sys\n"
    "from foundation.data_prep.config import PrepConfig\n"
    "from foundation.data_prep.pipeline import run_prep\n"
    "r = run_prep(PrepConfig(inputs=[sys.argv[1]], out=sys.argv[2], workers=1, progress=False))\n"
    "print(r.report.kept, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
)


def peak_memory(path: Path, out: Path) -> tuple[int, float, float]:
    """(frames kept, peak RSS MiB, wall seconds) of a whole `prep` run in a fresh process."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(out)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    kept, rss_kib = done.stdout.split()[-2:]
    shutil.rmtree(out, ignore_errors=True)
    return int(kept), int(rss_kib) / 1024, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("FOUNDATION_SHARED_DATA", REPO.parent / "shared" / "data")),
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
        work = Path(tmp)
        result = throughput(args.data, work, args.repeat)
        rates = result["rates"]
        pipe = rates["foundation prep -> LMDB"][0]
        print(
            f"throughput on {result['frames']} real frames ({args.data}/dft/*.xyz), best of {args.repeat}:"
        )
        for name, (cpu_rate, wall_rate) in rates.items():
            print(f"  {name:<26} {cpu_rate:8.0f} frames/CPU-s   ({wall_rate:6.0f} frames/s wall)")
        bare, db = rates["bare ase.io.iread parse"][0], rates["iread + ASE db write"][0]
        print(
            f"  pipeline / bare parse = {pipe / bare:.2f}x (target >= 0.7)   "
            f"pipeline / ASE db route = {pipe / db:.2f}x (target >= 2)"
        )
        if args.skip_memory:
            return 0
        print(
            f"peak memory of whole runs (workers=1), {args.small} vs {args.large} synthetic frames:"
        )
        for kind, writer, suffix in (
            ("extxyz", write_synthetic_extxyz, "xyz"),
            ("MPtrj JSON", write_synthetic_mptrj, "json"),
        ):
            peaks = []
            for n in (args.small, args.large):
                path = work / f"synthetic-{n}.{suffix}"
                writer(path, n)
                kept, rss, wall = peak_memory(path, work / "mem-out")
                peaks.append(rss)
                print(
                    f"  {kind:<10} {n:>7} frames ({path.stat().st_size / 2**20:6.0f} MiB): peak RSS {rss:7.1f} MiB,"
                    f" {kept} kept, {wall:6.1f} s ({n / wall:.0f} frames/s wall)"
                )
                path.unlink()
            print(f"  {kind:<10} large/small peak RSS = {peaks[1] / peaks[0]:.3f} (target <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
