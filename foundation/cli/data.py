"""`foundation data verify|stats`: integrity checks and summaries of a prepared dataset."""

from __future__ import annotations

import argparse
import sys

import numpy as np
from ase.data import chemical_symbols

from foundation.data.dataset import open_dataset
from foundation.data.manifest import Manifest
from foundation.data.verify import verify_dataset
from foundation.data_prep.leakage import describe as describe_leakage
from foundation.progress import progress_bar

RAW = argparse.RawDescriptionHelpFormatter


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data",
        help="inspect and verify prepared datasets",
        formatter_class=RAW,
        epilog="examples:\n  foundation data verify runs/data/demo\n  foundation data stats runs/data/demo",
    )
    inner = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    verify = inner.add_parser(
        "verify",
        help="re-check every shard's sha256 and decode every record",
        formatter_class=RAW,
        epilog="example:\n  foundation data verify runs/data/demo\n"
        "exit status 1 and one line per problem (shard and record named) when anything is wrong",
    )
    verify.add_argument("directory", help="a prepared dataset directory (holding manifest.json)")
    verify.set_defaults(func=run_verify)
    stats = inner.add_parser(
        "stats",
        help="print counts, elements and label distributions",
        formatter_class=RAW,
        epilog="example:\n  foundation data stats runs/data/demo",
    )
    stats.add_argument("directory", help="a prepared dataset directory (holding manifest.json)")
    stats.set_defaults(func=run_stats)


def run_verify(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.directory)
    with progress_bar(total=len(manifest.shards), unit="shard", desc="verify") as bar:
        report = verify_dataset(args.directory, progress=lambda _: bar.update())
    for error in report.errors:
        print(f"ERROR {args.directory}/{error}", file=sys.stderr)
    status = "OK" if report.ok else f"FAILED ({len(report.errors)} problems)"
    print(
        f"{status}: {report.shards_checked} shards, {report.records_checked} records checked in {args.directory}"
    )
    return 0 if report.ok else 1


def _describe(values: np.ndarray) -> str:
    if values.size == 0:
        return "none"
    q = np.percentile(values, [0, 50, 100])
    return f"mean {values.mean():.4g}  std {values.std():.4g}  min {q[0]:.4g}  median {q[1]:.4g}  max {q[2]:.4g}"


def run_stats(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.directory)
    print(
        f"dataset {args.directory}  (containers: {', '.join(manifest.containers)}; schema v{manifest.schema_version})"
    )
    for split in manifest.splits:
        natoms = manifest.atoms_per_frame(manifest.containers[0], split)
        print(
            f"  {split:<6} {natoms.size:>9} frames  {int(natoms.sum()):>11} atoms   atoms/frame: {_describe(natoms)}"
        )
    print(
        f"  elements ({len(manifest.elements)}): {' '.join(chemical_symbols[z] for z in manifest.elements)}"
    )
    q = manifest.quarantine
    print(f"  quarantined: {q.get('total', 0)}  {q.get('by_reason', {})}")
    print("\n".join(describe_leakage(manifest.leakage, manifest.split_groups)))
    energies, forces, stresses = [], [], []
    for frame in progress_bar(open_dataset(args.directory), desc="labels", unit="frame"):
        if frame.energy is not None:
            energies.append(frame.energy / frame.natoms)
        if frame.forces is not None:
            forces.append(np.linalg.norm(frame.forces, axis=1))
        if frame.stress is not None:
            stresses.append(frame.stress.ravel())
    print(f"  energy/atom (eV):  {_describe(np.asarray(energies))}")
    print(f"  |force| (eV/A):    {_describe(np.concatenate(forces) if forces else np.zeros(0))}")
    print(
        f"  stress (eV/A^3):   {_describe(np.concatenate(stresses) if stresses else np.zeros(0))}"
    )
    for key, value in sorted(manifest.statistics.items()):
        print(f"  {key}: {value}")
    return 0
