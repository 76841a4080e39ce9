"""Write and read throughput of the frame store (LMDB, WebDataset) beside an ASE database, on real DFT frames.

    python bench/store.py [--data ../shared/data] [--repeat 3]

Prints records/s for each route and the ratios of our containers to the ASE-database route (the route fairchem's
ASE-db datasets use). Target: LMDB at least 3x the ASE database, writing and reading.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import ase.db
import ase.io

from foundation.data.ase_convert import atoms_from_frame, frame_from_atoms
from foundation.data.lmdb_store import LmdbShard, close_readonly, write_lmdb_shard
from foundation.data.wds_store import iter_wds_shard, write_wds_shard

REPO = Path(__file__).resolve().parents[1]


def load_frames(data: Path):
    frames, atoms_list = [], []
    for path in sorted((data / "dft").glob("*.xyz")):
        for index, atoms in enumerate(ase.io.iread(path, index=":")):
            frames.append(
                frame_from_atoms(
                    atoms, frame_id=f"{path.stem}:{index}", structure_id=path.stem, source=path.name
                )
            )
            atoms_list.append(atoms)
    return frames, atoms_list


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frames, atoms_list = load_frames(args.data)
    n = len(frames)
    order = list(range(n))
    random.Random(0).shuffle(order)
    print(
        f"{n} real DFT frames ({sum(f.natoms for f in frames)} atoms) from {args.data / 'dft'}; best of {args.repeat}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lmdb_path, tar_path = tmp / "bench.lmdb", tmp / "bench.tar"

        def ase_write():
            path = tmp / "bench.db"
            path.unlink(missing_ok=True)
            with ase.db.connect(path) as db:  # one transaction: the fastest way to fill an ASE db
                for atoms in atoms_list:
                    db.write(atoms)

        def lmdb_read():
            close_readonly(lmdb_path)
            shard = LmdbShard(lmdb_path)
            for i in order:  # random access, as a shuffling sampler reads
                shard[i]

        def ase_read():
            db = ase.db.connect(tmp / "bench.db")
            for i in order:
                db.get(id=i + 1).toatoms()

        results = {
            ("write", "lmdb"): best_of(args.repeat, lambda: write_lmdb_shard(lmdb_path, frames)),
            ("write", "wds"): best_of(args.repeat, lambda: write_wds_shard(tar_path, frames)),
            ("write", "ase-db"): best_of(args.repeat, ase_write),
            ("read", "lmdb"): best_of(args.repeat, lmdb_read),
            ("read", "wds"): best_of(args.repeat, lambda: sum(1 for _ in iter_wds_shard(tar_path))),
            ("read", "ase-db"): best_of(args.repeat, ase_read),
        }
        # decoded frames are only useful as Atoms for the ASE route; check equivalence once
        assert all(
            (atoms_from_frame(f).positions == a.positions).all()
            for f, a in zip(frames[:50], atoms_list)
        )
    print(f"{'op':<6} {'route':<8} {'records/s':>12} {'vs ase-db':>10}")
    for (op, route), seconds in results.items():
        rate = n / seconds
        ratio = results[(op, "ase-db")] / seconds
        print(f"{op:<6} {route:<8} {rate:>12,.0f} {ratio:>9.1f}x")
    read_note = "LMDB read is random access (shuffled order), WebDataset sequential, ASE db by id in shuffled order"
    print(read_note)


if __name__ == "__main__":
    main()
