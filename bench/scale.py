"""Data preparation at scale: synthetic frames of realistic sizes -> `foundation prep --container both --workers 2`
(sharded LMDB + WebDataset), at two or three input sizes, then `data verify`, random LMDB reads and a short
training run streaming the WebDataset shards.

    OMP_NUM_THREADS=1 python bench/scale.py --sizes 20000,100000 --json /tmp/scale-small.json
    OMP_NUM_THREADS=1 nohup python bench/scale.py --sizes 2000000 --train-steps 0 --json /tmp/scale-2m.json \
        > /tmp/scale-2m.log 2>&1 &

Frames: 4-40 atoms (uniform, mean 22), 19 elements, a jittered grid in a slightly sheared cubic cell (every pair
beyond 0.5 A), energies, forces and a symmetric stress drawn with numpy; 5 frames per structure_id. They are
written as extended XYZ, one file per generator process (two, in parallel), with a per-file `source` tag.

Per size it records: generation seconds; prep wall seconds, frames/s (wall) and frames per CPU-second (user +
system time of the prep and its workers: the figure that projects core-hours); peak memory: the largest single
process (ru_maxrss of the prep's process tree) and the sum over the tree sampled every 0.5 s; shard count, bytes
per container and per frame; `foundation data verify` seconds; LMDB random reads per second (one process);
then, on the largest size only, a training run (scalable-xs, WebDataset, 2 loader workers) with its
data_wait_fraction. The JSON is rewritten after every phase, so a run cut short keeps what it measured. The load
average of the machine (os.getloadavg) is recorded beside each phase.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import psutil

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
MIN_ATOMS, MAX_ATOMS = 4, 40
FRAMES_PER_STRUCTURE = 5
PREP_WORKERS = 2


def write_frames(path: str, start: int, count: int, seed: int, source: str) -> None:
    """`count` synthetic frames (ids start..start+count-1) as extended XYZ, formatted one frame per % operation."""
    rng = np.random.default_rng(seed)
    with open(path, "w", buffering=1 << 22) as fh:
        for i in range(start, start + count):
            n = int(rng.integers(MIN_ATOMS, MAX_ATOMS + 1))
            k = int(np.ceil(n ** (1 / 3)))
            a = 2.3 * k
            grid = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n]
            cell = np.diag([a, a, a]) + rng.normal(0, 0.05, (3, 3))
            positions = ((grid + 0.5) / k + rng.normal(0, 0.02, (n, 3))) @ cell
            rows = np.empty((n, 7), dtype=object)
            rows[:, 0] = [ELEMENTS[j] for j in rng.integers(0, len(ELEMENTS), n)]
            rows[:, 1:4] = positions
            rows[:, 4:7] = rng.normal(0, 0.5, (n, 3))
            stress = rng.normal(0, 0.01, (3, 3))
            stress = (stress + stress.T) / 2
            lattice = " ".join(f"{x:.6f}" for x in cell.ravel())
            fh.write(
                f'{n}\nLattice="{lattice}" Properties=species:S:1:pos:R:3:forces:R:3 '
                f"structure_id=s{i // FRAMES_PER_STRUCTURE} frame_id=f{i} source={source} "
                f'energy={-4.0 * n + rng.normal():.6f} stress="{" ".join(f"{x:.6g}" for x in stress.ravel())}" '
                f'pbc="T T T"\n'
            )
            fh.write(("%s %.6f %.6f %.6f %.5f %.5f %.5f\n" * n) % tuple(rows.ravel()))


def generate(work: Path, frames: int) -> list[Path]:
    """Two extended XYZ files holding `frames` frames in all, written by two processes."""
    half = frames // 2
    jobs = [
        (str(work / "part-0.xyz"), 0, half, 0, "synthetic-a"),
        (str(work / "part-1.xyz"), half, frames - half, 1, "synthetic-b"),
    ]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.starmap(write_frames, jobs)
    return [Path(j[0]) for j in jobs]


def chunks_done(work_dir: Path) -> dict:
    """Records read by the finished chunk tasks of a prep in progress (their completion markers)."""
    records = 0
    for marker in work_dir.glob("chunk-*.done"):
        try:
            records += json.loads(marker.read_text())["records"]
        except (OSError, ValueError, KeyError):
            pass
    return {"records": records}


class TreeMemory:
    """Samples the summed RSS of a process and its descendants every `interval` seconds; `peak` in bytes. With
    `watch` (a prep's work directory) it also records the records read by finished chunks every 30 s, so a run
    cut short still tells its throughput (`progress`: (seconds, records) pairs)."""

    def __init__(
        self, pid: int, interval: float = 0.5, watch: Path | None = None, on_progress=None
    ):
        self.process, self.interval, self.peak = psutil.Process(pid), interval, 0
        self.watch, self.on_progress, self.progress = watch, on_progress, []
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.process] + self.process.children(recursive=True)
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            elapsed = time.perf_counter() - self.started
            if self.watch is not None and elapsed >= 30 * (len(self.progress) + 1):
                self.progress.append(
                    (round(elapsed, 1), chunks_done(self.watch)["records"], self.peak / 2**20)
                )
                if self.on_progress is not None:
                    self.on_progress(self.progress)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'code': code, 'maxrss_kib': usage.ru_maxrss,\n"
    "                  'cpu_s': usage.ru_utime + usage.ru_stime}))\n"
)


def run_measured(cmd: list[str], watch: Path | None = None, on_progress=None) -> dict:
    """Run a command (through a wrapper process whose only descendants are the command's): wall seconds, CPU
    seconds of the command and its workers, the largest single process's peak RSS, the summed tree RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRAPPER, *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    memory = TreeMemory(proc.pid, watch=watch, on_progress=on_progress)
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    tree_peak = memory.stop()
    report = json.loads(output.strip().splitlines()[-1])
    if proc.returncode or report["code"]:
        raise RuntimeError(f"{' '.join(cmd)} failed ({report['code']}):\n{output[-3000:]}")
    return {
        "wall_s": wall,
        "cpu_s": report["cpu_s"],
        "largest_process_mib": report["maxrss_kib"] / 1024,
        "tree_peak_mib": tree_peak / 2**20,
        "load_average": os.getloadavg(),
    }


def shard_figures(out: Path) -> dict:
    """Shards, bytes and bytes per frame of each container, from the manifest."""
    manifest = json.loads((out / "manifest.json").read_text())
    figures = {}
    for container in ("lmdb", "wds"):
        shards = [s for s in manifest["shards"] if s["container"] == container]
        frames = sum(s["num_frames"] for s in shards)
        size = sum(s["size"] for s in shards)
        figures[container] = {
            "shards": len(shards),
            "frames": frames,
            "bytes": size,
            "bytes_per_frame": size / max(frames, 1),
            "mean_shard_mib": size / max(len(shards), 1) / 2**20,
        }
    return figures


def random_reads(out: Path, reads: int, seed: int = 0) -> dict:
    from foundation.data.dataset import FrameDataset

    dataset = FrameDataset(out, split="train", container="lmdb")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(dataset), reads).tolist()
    start = time.perf_counter()
    atoms = sum(dataset[i].natoms for i in indices)
    wall = time.perf_counter() - start
    return {
        "reads": reads,
        "reads_per_s": reads / wall,
        "mean_atoms": atoms / reads,
        "load_average": os.getloadavg(),
    }


def streaming_training(out: Path, work: Path, steps: int) -> dict:
    from foundation.train.config import load_train_config
    from foundation.train.run_layout import RunLayout
    from foundation.train.runner import run_training

    run_dir = work / f"train-{out.name}"
    config = {
        "model": "scalable-xs",
        "run_dir": str(run_dir),
        "data": {
            "path": str(out),
            "container": "wds",
            "max_atoms": 256,
            "num_workers": 2,
            "val_max_frames": 64,
        },
        "objective": {"energy_weight": 1.0, "forces_weight": 10.0, "stress_weight": 100.0},
        "train": {
            "max_steps": steps,
            "log_every": 5,
            "val_every": steps,
            "checkpoint_every": steps,
            "progress": False,
        },
    }
    start = time.perf_counter()
    run_training(load_train_config(config))
    wall = time.perf_counter() - start
    lines = RunLayout(run_dir).metrics_log.read_text().splitlines()
    events = [e for e in map(json.loads, lines) if e["kind"] == "train"][
        1:
    ]  # the first window: worker start-up
    return {
        "steps": steps,
        "loader_workers": 2,
        "container": "wds",
        "wall_s": wall,
        "data_wait_fraction": statistics.mean(e["data_wait_fraction"] for e in events),
        "step_time_s": statistics.mean(e["step_time_s"] for e in events),
        "atoms_per_s": statistics.mean(e["atoms_per_s"] for e in events),
        "load_average": os.getloadavg(),
    }


def measure_size(
    frames: int, work: Path, results: dict, save, *, train_steps: int, reads: int
) -> None:
    entry: dict = {"frames": frames}
    results["sizes"].append(entry)
    start = time.perf_counter()
    inputs = generate(work, frames)
    entry["generate_s"] = time.perf_counter() - start
    entry["input_bytes"] = sum(p.stat().st_size for p in inputs)
    save()
    out = work / f"dataset-{frames}"  # a fresh path per size: open LMDB handles are cached by path

    def progress(
        samples: list,
    ) -> None:  # (seconds, records read by finished chunks, tree RSS MiB so far)
        entry["prep_progress"] = samples
        save()

    prep = run_measured(
        [
            sys.executable,
            "-m",
            "foundation.cli.main",
            "-q",
            "prep",
            *map(str, inputs),
            "--out",
            str(out),
            "--container",
            "both",
            "--workers",
            str(PREP_WORKERS),
            "--no-progress",
        ],
        watch=out / "_work",
        on_progress=progress,
    )
    for path in inputs:
        path.unlink()
    stats = json.loads((out / "manifest.json").read_text()).get("statistics") or {}
    entry["prep"] = {
        **prep,
        "train_frames": stats.get("num_frames"),
        "train_atoms": stats.get("num_atoms"),
        "frames_per_s": frames / prep["wall_s"],
        "frames_per_cpu_s": frames / prep["cpu_s"],
    }
    entry["shards"] = shard_figures(out)
    save()
    entry["verify"] = run_measured(
        [sys.executable, "-m", "foundation.cli.main", "-q", "data", "verify", str(out)]
    )
    save()
    entry["random_read"] = random_reads(out, reads)
    save()
    if train_steps:
        entry["training"] = streaming_training(out, work, train_steps)
        save()
    shutil.rmtree(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="20000,100000", help="comma-separated frame counts, smallest first"
    )
    parser.add_argument("--json", type=Path, default=Path("/tmp/scale.json"))
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch directory (default: a new one in /tmp)"
    )
    parser.add_argument(
        "--train-steps", type=int, default=40, help="training steps on the largest size (0: none)"
    )
    parser.add_argument("--reads", type=int, default=20000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
        "cpu_count": os.cpu_count(),
        "prep_workers": PREP_WORKERS,
        "atoms_per_frame": [MIN_ATOMS, MAX_ATOMS],
        "sizes": [],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    def save() -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps(results["sizes"][-1] if results["sizes"] else results), flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.work))
    try:
        for n, frames in enumerate(sizes):
            last = n == len(sizes) - 1
            measure_size(
                frames,
                work,
                results,
                save,
                train_steps=args.train_steps if last else 0,
                reads=args.reads,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
