"""`foundation export MODEL --out FILE.pt`: the potential as one TorchScript file for MD engines, computing energy,
per-atom energies, forces and stress from (numbers, positions, cell, pbc) with the neighbour list inside; it
needs only torch to run (no foundation package): see foundation/export.py and docs/md.md."""

from __future__ import annotations

import argparse

import torch

from foundation.export import export_potential
from foundation.models.loading import RELEASE, load_potential, open_model
from foundation.release import release_info

RAW = argparse.RawDescriptionHelpFormatter
EPILOG = """examples:
  foundation export releases/schnet-v1 --out schnet-v1.pt
  foundation export schnet-v1 --out schnet-v1-f64.pt --dtype float64     (a name in $FOUNDATION_MODELS)

then, with only torch installed:
  model = torch.jit.load("schnet-v1.pt")
  out = model(numbers, positions, cell, pbc)   # out["energy"], out["energies"], out["forces"], out["stress"]"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a release as a TorchScript file for MD engines (torch only)",
        description=__doc__,
        formatter_class=RAW,
        epilog=EPILOG,
    )
    p.add_argument(
        "model",
        help="release directory, or a model name in the model directories (FOUNDATION_MODELS)",
    )
    p.add_argument("--out", required=True, help="TorchScript file to write (.pt)")
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help="precision of the exported model (default float32; float64 for long NVE runs)",
    )
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    files = open_model(args.model, kinds=(RELEASE,))
    directory = files.path
    potential = load_potential(files).to(getattr(torch, args.dtype))
    info = release_info(directory)
    out = export_potential(
        potential,
        args.out,
        metadata={
            "release": info.get("name", directory.name),
            "weights_sha256": info.get("weights_sha256"),
            "license": info.get("license"),
        },
    )
    print(
        f"exported {directory} to {out} ({args.dtype}, cutoff {potential.cutoff} A); "
        f"load with torch.jit.load({str(out)!r})"
    )
    return 0
