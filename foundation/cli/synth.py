"""`foundation synth --out FILE.extxyz`: teacher-labelled non-equilibrium frames (CHGNet 0.3.0 or EMT), offline."""

from __future__ import annotations

import argparse

from foundation.config import load_config, read_yaml
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.pipeline import format_summary, run_prep
from foundation.data_prep.synth.generate import SynthConfig, synthesize

EPILOG = """examples:
  foundation synth --out runs/synth/demo.extxyz --frames 2000 --workers 2
  foundation synth --out runs/synth/emt.extxyz --frames 500 --teacher emt --seed 1 --prep runs/data/emt
  foundation synth --out runs/synth/chgnet.extxyz --frames 200 --teacher chgnet
      (--teacher chgnet needs the optional extra: pip install 'foundation[teacher]')

Seeds: ASE's elemental crystals and dcdft set, and pymatgen's AFLOW prototypes decorated with other elements;
each is repeated, strained and rattled (one frame) or relaxed for a few steps (every 4th step kept).
--teacher auto takes CHGNet when the `teacher` extra is installed, else EMT (Al Cu Ag Au Ni Pd Pt and alloys).
The output is the same for any --workers. Writes FILE.extxyz (energy, forces, stress eV/A^3 with ASE's sign,
structure_id, frame_id, source) and FILE.synth.yaml (the resolved options); --prep DIR then runs
`foundation prep FILE.extxyz --out DIR` on it. These are a teacher's labels, not DFT."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="generate teacher-labelled non-equilibrium frames (no downloads)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output extended XYZ file")
    p.add_argument("--frames", type=int, help="number of frames (default 1000)")
    p.add_argument(
        "--teacher",
        choices=("auto", "chgnet", "emt"),
        help="labelling potential (default auto: chgnet if installed, else emt)",
    )
    p.add_argument("--workers", type=int, help="parallel processes (default 1)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument(
        "--config", help="YAML file of generator options (SynthConfig fields; flags override it)"
    )
    p.add_argument(
        "--prep", metavar="DIR", help="then prepare a sharded dataset in DIR from the output"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    data = read_yaml(args.config) if args.config else {}
    flags = {
        "frames": args.frames,
        "teacher": args.teacher,
        "workers": args.workers,
        "seed": args.seed,
    }
    data.update({key: value for key, value in flags.items() if value is not None})
    config = load_config(SynthConfig, data)
    out = synthesize(args.out, config, progress=not args.no_progress)
    print(f"wrote {config.frames} frames to {out} (options: {out.with_suffix('.synth.yaml')})")
    if args.prep:
        prep = PrepConfig(
            inputs=[str(out)],
            out=args.prep,
            workers=config.workers,
            progress=not args.no_progress,
            required=["energy", "forces", "stress"],
        )
        print(format_summary(run_prep(prep), args.prep))
    return 0
