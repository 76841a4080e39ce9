"""Peak memory of the merge's duplicate detection against the number of frames: hash buckets on disk
(`foundation.data_prep.dedup.duplicates_in_buckets`, what `foundation prep` runs) beside one in-memory pass
(`first_occurrences` over all keys at once, what the merge did before), each in a fresh process.

    OMP_NUM_THREADS=1 python bench/dedup.py --sizes 200000,2000000,6000000 --json docs/bench/dedup-memory.json

Keys are random 16-byte digests (as blake2b gives), 20% of them repeats, arriving in chunks of 10,000 frames.
The figure is the growth of the process's peak RSS (ru_maxrss) over its start, in MiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

_MEASURE = """
import resource, sys, tempfile
import numpy as np
from foundation.data_prep.dedup import duplicates_in_buckets, first_occurrences

route, n = sys.argv[1], int(sys.argv[2])
def parts():
    rng = np.random.default_rng(0)
    for start in range(0, n, 10_000):
        keys = rng.integers(0, 256, (min(10_000, n - start), 16), dtype=np.uint8)
        keys[: len(keys) // 5] = keys[len(keys) // 5: 2 * (len(keys) // 5)]
        yield np.arange(start, start + len(keys)), keys
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if route == "buckets":
    with tempfile.TemporaryDirectory() as scratch:
        repeated, _ = duplicates_in_buckets(parts(), n, scratch)
else:
    keys = np.concatenate([k for _, k in parts()])
    first, _ = first_occurrences(keys)
    repeated = np.flatnonzero(~first)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024, len(repeated))
"""


def measure(route: str, frames: int) -> dict:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, route, str(frames)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        "peak_growth_mib": float(out[0]),
        "duplicates": int(out[1]),
        "wall_s": time.perf_counter() - start,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="200000,2000000,6000000")
    parser.add_argument("--json", type=Path, default=Path("/tmp/dedup-memory.json"))
    args = parser.parse_args()
    rows = []
    for frames in map(int, args.sizes.split(",")):
        row = {
            "frames": frames,
            **{route: measure(route, frames) for route in ("buckets", "one_pass")},
        }
        assert row["buckets"]["duplicates"] == row["one_pass"]["duplicates"]
        print(
            f"{frames:>10,} frames: buckets {row['buckets']['peak_growth_mib']:7.1f} MiB, "
            f"one pass {row['one_pass']['peak_growth_mib']:7.1f} MiB",
            flush=True,
        )
        rows.append(row)
    command = "python bench/dedup.py --sizes " + args.sizes + " --json " + str(args.json)
    args.json.write_text(json.dumps({"command": command, "sizes": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
