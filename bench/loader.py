"""The training loader alone (no model): atoms/s delivered into the training process, and where each loader
worker's time goes, on the real DFT frames (4,096-atom micro-batches, 5 A cutoff).

    python bench/loader.py [--data ../shared/data] [--work /tmp/foundation-bench-loader] [--epochs 4] [--quick]

The frames are prepared once (`foundation prep`'s pipeline, LMDB and WebDataset, shards of 1,000 frames, all in
one train split) under --work. For LMDB and WebDataset, graphs built in the workers or left for the device
(`data.graphs: device`: BatchBuilder(build_graph=False); the training process builds them, not timed here), 1, 2
and 4 workers, and workers that live across epochs (persistent: one loader for all epochs, as a training run
uses) or one loader per epoch (its workers started every epoch), it reads --epochs epochs and prints:

- atoms/s delivered: atoms of the micro-batches the training process received / wall time from the loader's
  creation to its last micro-batch (worker starts included);
- the ratio to the same pipeline run in the training process itself (no DataLoader, no hand-off);
- atoms per CPU second of the workers, and the training process's CPU milliseconds per micro-batch (receiving
  it), both independent of what else runs on the machine;
- the share of the workers' wall time in read (records off the shard), decode (record bytes -> Frame), graph
  (the neighbour search), collate (the rest of building the batch) and hand-off (from a batch built to the next
  begun: the queue put, whose pickling into shared memory runs in a feeder thread of the same worker, and the
  wait for the next key).

The stage clocks are a bench-only wrapper (the dataset's frames and builder wrapped, the decode and graph
functions timed in each worker); the library itself carries no timing code. The fork server is started before
any timing (a process pays it once, whatever its loaders do).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.pipeline import run_prep

from foundation.data import batch as batch_module
from foundation.data import lmdb_store, wds_store
from foundation.train.config import DataConfig
from foundation.train.datasets import BatchBuilder, MapBatchDataset
from foundation.train.loader import SplitLoader, build_split_loader

REPO = Path(__file__).resolve().parents[1]
BATCH_ATOMS, CUTOFF = 4096, 5.0
STAGES = ("read", "decode", "graph", "collate", "hand-off")
CLOCK, CLOCK_FIELDS = "bench_clock", ("cpu", *STAGES, "pid")

# ---- stage clocks (per process: the loader workers each keep their own) ---------------------------------
_SUMS: dict[str, float] = defaultdict(float)
_STATE: dict[str, object] = {"installed_in": None, "returned": None, "cpu_at": None}


def _timed(fn, stage: str):
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _SUMS[stage] += time.perf_counter() - started

    return timed


def _install_clocks() -> None:
    """Time decode and the neighbour search where the pipeline calls them (once per process)."""
    if _STATE["installed_in"] == os.getpid():
        return
    lmdb_store.decode_frame = _timed(lmdb_store.decode_frame, "decode")
    wds_store.decode_frame = _timed(wds_store.decode_frame, "decode")
    batch_module.radius_graph_pbc = _timed(batch_module.radius_graph_pbc, "graph")
    _STATE["installed_in"], _STATE["cpu_at"] = os.getpid(), time.process_time()


class TimedFrames:
    """A dataset's frames, each read timed ("access": read + decode); the first read of a batch also closes the
    hand-off of the batch before it."""

    def __init__(self, frames):
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index):
        _install_clocks()
        started = time.perf_counter()
        if _STATE["returned"] is not None:
            _SUMS["hand-off"] += started - _STATE["returned"]
            _STATE["returned"] = None
        try:
            return self.frames[index]
        finally:
            _SUMS["access"] += time.perf_counter() - started


@dataclasses.dataclass(frozen=True)
class TimedBuilder:
    """The dataset's BatchBuilder; each TrainItem leaves with the stage times spent on it and its worker's pid
    (a float64 tensor in `clean.properties`, so it crosses with the batch; `clock(item)` reads it)."""

    builder: BatchBuilder

    def __call__(self, key, frames):
        _install_clocks()
        graph_before, started = _SUMS["graph"], time.perf_counter()
        item = self.builder(key, frames)
        built = time.perf_counter() - started
        graph = _SUMS["graph"] - graph_before
        cpu = time.process_time()
        times = {
            "cpu": cpu - _STATE["cpu_at"],  # this process's CPU seconds since its last batch
            "read": _SUMS["access"] - _SUMS["decode"],
            "decode": _SUMS["decode"],
            "graph": graph,
            "collate": built - graph,
            "hand-off": _SUMS["hand-off"],
            "pid": os.getpid(),
        }
        item.clean.properties[CLOCK] = torch.tensor(
            [times[k] for k in CLOCK_FIELDS], dtype=torch.float64
        )
        _SUMS.clear()
        _STATE["returned"], _STATE["cpu_at"] = time.perf_counter(), cpu
        return item


# ---- the runs ---------------------------------------------------------------------------------------------
def prepare(data: Path, work: Path) -> Path:
    """The real DFT frames as one train split, LMDB and WebDataset, under `work` (prepared once)."""
    out = work / "dft"
    if not (out / "manifest.json").exists():
        inputs = sorted(str(p) for p in (data / "dft").glob("*.xyz"))
        run_prep(
            PrepConfig(
                inputs=inputs,
                out=str(out),
                container="both",
                shard_size=1000,
                split={"train": 1.0},
                progress=False,
            )
        )
    return out


def split_loader(path: Path, container: str, graphs: str, workers: int) -> SplitLoader:
    data = DataConfig(
        path=str(path),
        container=container,
        max_atoms=BATCH_ATOMS,
        num_workers=workers,
        prefetch_factor=2,
    )
    split = build_split_loader(
        data,
        "train",
        BatchBuilder(CUTOFF, build_graph=graphs == "worker"),
        rank=0,
        world_size=1,
        grad_accum=1,
        seed=0,
        train=True,
    )
    split.dataset.frames = TimedFrames(split.dataset.frames)
    split.dataset.builder = TimedBuilder(split.dataset.builder)
    return split


def read_epochs(split: SplitLoader, epochs: int, mode: str) -> tuple[float, float, list]:
    """(wall seconds, this process's CPU seconds, items) of `epochs` epochs: persistent (one loader), per-epoch
    loaders, or in-process."""
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "persistent":
        count = sum(len(split.sampler.rank_batches(e)) for e in range(epochs))
        items = list(itertools.islice(split.loader(0, onward=True), count))
    elif mode == "per-epoch":
        items = [item for e in range(epochs) for item in split.loader(e)]
    else:  # the same pipeline in this process: no DataLoader, no hand-off
        dataset = split.dataset
        items, _STATE["cpu_at"] = [], time.process_time()
        for e in range(epochs):
            split.sampler.set_epoch(e)
            if isinstance(dataset, MapBatchDataset):
                items += [dataset[key] for key in split.sampler]
            else:
                items += list(dataset)
        _STATE["returned"] = None
    return time.perf_counter() - started, time.process_time() - cpu, items


def warm_fork_server(path: Path) -> None:
    """Start the workers' fork server (once per process) before anything is timed."""
    next(iter(split_loader(path, "lmdb", "worker", 1).loader(0)))


def clock(item) -> dict[str, float]:
    """The stage times TimedBuilder gave an item."""
    return dict(zip(CLOCK_FIELDS, item.clean.properties[CLOCK].tolist()))


def shares(clocks: list[dict[str, float]]) -> dict[str, float]:
    totals = {stage: sum(c[stage] for c in clocks) for stage in STAGES}
    whole = sum(totals.values()) or 1.0
    return {stage: totals[stage] / whole for stage in STAGES}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/foundation-bench-loader"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 and 2 workers")
    args = parser.parse_args()
    epochs, worker_counts = (2, (1, 2)) if args.quick else (args.epochs, (1, 2, 4))
    path = prepare(args.data, args.work)
    warm_fork_server(path)
    probe = split_loader(path, "lmdb", "worker", 0)
    frames, atoms = len(probe.sampler.natoms), int(probe.sampler.natoms.sum())
    batches = len(probe.sampler.rank_batches(0))
    print(
        f"{frames} real DFT frames ({atoms} atoms) from {args.data / 'dft'}; micro-batches of <= "
        f"{BATCH_ATOMS} atoms ({batches} per epoch), cutoff {CUTOFF} A, {epochs} epochs per row; "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} cores"
    )
    header = (
        f"{'container':<9} {'graphs':<6} {'workers':>7} {'loaders':<10} {'starts':>6} {'atoms/s':>9} "
        f"{'vs in-proc':>10} {'atoms/cpu-s':>11} {'main ms':>7} "
        + " ".join(f"{s:>8}" for s in STAGES)
    )
    print(header)
    for container in ("lmdb", "wds"):
        for graphs in ("worker", "device"):
            seconds, main_cpu, items = read_epochs(
                split_loader(path, container, graphs, 0), epochs, "inproc"
            )
            inproc = sum(i.num_atoms for i in items) / seconds
            rows = [("in-process", 0, inproc, main_cpu, items)]
            for workers in worker_counts:
                for mode in ("persistent", "per-epoch"):
                    split = split_loader(path, container, graphs, workers)
                    seconds, main_cpu, items = read_epochs(split, epochs, mode)
                    rate = sum(i.num_atoms for i in items) / seconds
                    rows.append((mode, workers, rate, main_cpu, items))
            for mode, workers, rate, main_cpu, items in rows:
                clocks = [clock(i) for i in items]
                share = shares(clocks)
                starts = len({c["pid"] for c in clocks}) if workers else 0
                per_cpu = sum(i.num_atoms for i in items) / sum(c["cpu"] for c in clocks)
                print(
                    f"{container:<9} {graphs:<6} {workers:>7} {mode:<10} {starts:>6} {rate:>9,.0f} "
                    f"{rate / inproc:>9.2f}x {per_cpu:>11,.0f} {1e3 * main_cpu / len(items):>7.1f} "
                    + " ".join(f"{share[s]:>7.0%} " for s in STAGES)
                )
    print(
        "starts: worker processes started; atoms/s: delivered into this process (wall clock, worker starts "
        "included); vs in-proc: the same pipeline run here without a DataLoader; atoms/cpu-s: atoms per CPU "
        "second of the workers (of this process in-process; worker starts excluded): what one worker with a "
        "core of its own builds; main ms: CPU milliseconds of this process per micro-batch (receiving it; "
        "in-process: building it); stage shares: of the summed worker wall time"
    )


if __name__ == "__main__":
    main()
