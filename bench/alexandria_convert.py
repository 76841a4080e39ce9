"""Cost of turning one Alexandria entry (a ComputedStructureEntry dict) into a frame's arrays: pymatgen's own path
(ComputedStructureEntry.from_dict, then AseAtomsAdaptor.get_atoms) against the readers' `structure_arrays` (the
sites' fractional coordinates times the lattice, bit for bit the same positions: tests/data_prep/readers/
test_alexandria.py compares). Per entry, CPU time of one process (the machine is shared: wall time measures the
other jobs), on 12-atom entries, the median of Alexandria's sizes.

    OMP_NUM_THREADS=1 python bench/alexandria_convert.py      # writes docs/bench/alexandria-convert.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pymatgen
from foundation.data_prep.readers.mptrj import structure_arrays
from pymatgen.core import Lattice, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry
from pymatgen.io.ase import AseAtomsAdaptor

REPO = Path(__file__).resolve().parents[1]


def _entries(count: int) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        lattice = Lattice.from_parameters(*rng.uniform(4, 7, 3), *rng.uniform(80, 100, 3))
        structure = Structure(lattice, ["Li", "Fe", "O", "O"] * 3, rng.uniform(0, 1, (12, 3)))
        entry = ComputedStructureEntry(
            structure,
            -50.0,
            correction=-1.2,
            entry_id=f"agm{i:09d}",
            data={"mat_id": f"agm{i:09d}", "forces": rng.normal(size=(12, 3)).tolist()},
        )
        out.append(json.loads(json.dumps(entry.as_dict())))
    return out


def _per_entry(fn, entries) -> float:
    start = time.process_time()
    for entry in entries:
        fn(entry)
    return (time.process_time() - start) / len(entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "alexandria-convert.json"))
    args = parser.parse_args()
    entries = _entries(args.entries)
    pymatgen_s = _per_entry(
        lambda d: AseAtomsAdaptor.get_atoms(ComputedStructureEntry.from_dict(d).structure), entries
    )
    ours_s = _per_entry(lambda d: structure_arrays(d["structure"]), entries)
    result = {
        "entries": args.entries,
        "atoms_per_entry": 12,
        "pymatgen_from_dict_plus_adaptor_ms": round(pymatgen_s * 1e3, 4),
        "structure_arrays_ms": round(ours_s * 1e3, 4),
        "ratio": round(pymatgen_s / ours_s, 1),
        "clock": "process CPU time, one thread",
        "pymatgen": pymatgen.core.__version__,
        "python": platform.python_version(),
        "command": "OMP_NUM_THREADS=1 python bench/alexandria_convert.py",
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
