"""A speed change measured against the code it replaced: the same work, old and new module interleaved in one process.

On a shared machine two runs at different moments differ by more than most optimisations, so each target loads the
module as it was at --old (`git show REV:path`, with the foundation modules it imports from COMPANIONS as they were
too) beside the current one and alternates them for --rounds rounds, timing CPU (process) time on one thread; outputs
are checked equal first.

  graph       radius_graph_pbc on all real frames of ../shared/data/dft as one batch (or batches of --batch-size) at
              --cutoff (default 5 A) (foundation/data/graph.py with foundation/data/pair_search.py)
  cell-list   radius_graph_pbc on one 12^3 supercell of frame 3 (8,640 atoms: the cell-list path) at --cutoff
  painn       the E/F/S training step of scalable-s on batches of <= 256 real atoms (foundation/models/painn.py)

    OMP_NUM_THREADS=1 python bench/revisions.py graph --old dcff091~1 --out docs/bench/revisions-graph.json
    OMP_NUM_THREADS=1 python bench/revisions.py painn --old 511204e~1 --out docs/bench/revisions-painn.json
    OMP_NUM_THREADS=1 python bench/revisions.py cell-list --old 0604a0c~1 --out docs/bench/revisions-cell-list.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PATHS = {
    "graph": "foundation/data/graph.py",
    "cell-list": "foundation/data/graph.py",
    "painn": "foundation/models/painn.py",
}
# Modules imported by a target's module that hold part of its code, loaded at the same revision.
COMPANIONS = {"foundation/data/graph.py": ["foundation/data/pair_search.py"]}


def module_at(revision: str, path: str):
    """The module file `path` as it was at `revision`, imported under a private name (its COMPANIONS too, where
    they existed then)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    for companion in COMPANIONS.get(path, []):
        dotted = companion.removesuffix(".py").replace("/", ".")
        if f"from {dotted} import" in source:
            source = source.replace(
                f"from {dotted} import", f"from {module_at(revision, companion).__name__} import"
            )
    name = f"old_{Path(path).stem}"
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def graph_jobs(old, cutoff: float, batch_size: int | None = None, large: bool = False) -> dict:
    import neighbours  # bench/neighbours.py

    from foundation.data import graph

    frames = neighbours.load_frames(neighbours.DATA)
    frames = [frames[3].repeat(12)] if large else frames
    size = batch_size or len(frames)
    batches = [neighbours.as_tensors(frames[k : k + size]) for k in range(0, len(frames), size)]
    for batch in batches:
        a, b = old.radius_graph_pbc(*batch, cutoff), graph.radius_graph_pbc(*batch, cutoff)
        if not (torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])):
            raise SystemExit("old and new edge lists differ")
    return {
        "old": lambda: [old.radius_graph_pbc(*batch, cutoff) for batch in batches],
        "new": lambda: [graph.radius_graph_pbc(*batch, cutoff) for batch in batches],
    }


def painn_jobs(old) -> dict:
    import time_to_accuracy as tta  # bench/time_to_accuracy.py

    from foundation.train.config import ObjectiveConfig
    from foundation.train.objectives import Objective

    train, _ = tta.load_split(tta.DATA, 1)
    norm = tta.normalization(train)
    batches = tta.make_batches(train[:300], 256, 0)[:3]
    objective = Objective(
        ObjectiveConfig(energy_weight=1.0, forces_weight=10.0, stress_weight=100.0)
    )
    new_runner, old_runner = tta.Ours("scalable-s", norm), tta.Ours("scalable-s", norm)
    old_runner.model.load_state_dict(new_runner.model.state_dict())
    backbone = old_runner.model.backbone  # the old code on the same modules and weights
    for message in backbone.messages:
        message.forward = old.Message.forward.__get__(message)
    backbone.forward = old.PaiNN.forward.__get__(backbone)
    a, b = (r.model.eval()(batches[0]) for r in (old_runner, new_runner))
    if any(not torch.equal(a[k], b[k]) for k in a):
        raise SystemExit("old and new outputs differ")

    def steps(runner):
        return lambda: [tta.train_step(runner, batch, objective) for batch in batches]

    return {"old": steps(old_runner), "new": steps(new_runner)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=sorted(PATHS))
    parser.add_argument("--old", required=True, help="git revision of the replaced code")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--cutoff", type=float, default=5.0, help="graph targets, A")
    parser.add_argument(
        "--batch-size", type=int, help="graph: structures per call (default: all in one)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    make = {
        "graph": lambda old: graph_jobs(old, args.cutoff, args.batch_size),
        "cell-list": lambda old: graph_jobs(old, args.cutoff, large=True),
        "painn": painn_jobs,
    }[args.target]
    jobs = make(module_at(args.old, PATHS[args.target]))
    times = {name: [] for name in jobs}
    for _ in range(args.rounds):
        for name, job in jobs.items():
            began = time.process_time()
            job()
            times[name].append(time.process_time() - began)
    result = {
        "command": "python bench/revisions.py " + " ".join(sys.argv[1:]),
        "target": args.target,
        "path": PATHS[args.target],
        "old": args.old,
        "rounds": args.rounds,
        "cpu_s": times,
        "best": {k: min(v) for k, v in times.items()},
        "median": {k: statistics.median(v) for k, v in times.items()},
    }
    result["speedup_best"] = result["best"]["old"] / result["best"]["new"]
    result["speedup_median"] = result["median"]["old"] / result["median"]["new"]
    print(json.dumps({k: v for k, v in result.items() if k != "cpu_s"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
