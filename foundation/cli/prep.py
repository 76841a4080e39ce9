"""`foundation prep INPUT... --out DIR`: raw DFT outputs -> validated, deduplicated, split, sharded dataset."""

from __future__ import annotations

import argparse
import sys

from foundation.cli.cluster import add_cluster_options, on_cluster, submit_and_follow, take_profile
from foundation.config import ConfigError, from_dict, read_yaml
from foundation.data_prep.config import FORMATS, PrepConfig, parse_assignments, parse_ratios
from foundation.data_prep.pipeline import format_summary, prep_workload, run_prep
from foundation.data_prep.readers.base import ReaderError
from foundation.data_prep.split import GROUP_RULES

EPILOG = """examples:
  foundation prep ../shared/data/dft/*.xyz --out runs/data/dft
  foundation prep MPtrj_2022.9_full.json --out runs/data/mptrj --container both --workers 8
  foundation prep runs/vasp/ --format auto --out runs/data/vasp --require energy,forces,stress
  foundation prep frames.xyz --out DIR --split train=0.8,val=0.1,test=0.1 --max-force 30 --min-distance 0.6
  foundation prep md.xyz mptrj.json --out DIR --group-by-input md.xyz=composition

Re-running the same command after a crash or kill redoes only unfinished chunks and gives the same shards.
Outputs: DIR/manifest.json, DIR/lmdb|wds shards, DIR/quarantine.jsonl (refused frames with reason),
DIR/duplicates.jsonl, DIR/prep_config.yaml. Check the result with `foundation data verify DIR`."""

# CLI flag -> PrepConfig field (value None: not given on the command line)
_FIELDS = (
    "format",
    "container",
    "shard_size",
    "chunk_frames",
    "workers",
    "split_salt",
    "group_by",
    "energy",
    "structure_key",
    "frame_key",
    "energy_key",
    "forces_key",
    "stress_key",
    "max_force",
    "max_energy_per_atom",
    "max_stress",
    "max_atoms",
    "max_line_bytes",
    "max_record_bytes",
    "min_distance",
    "max_energy_residual",
    "dedup_tolerance",
    "neighbour_cutoff",
    "neighbour_sample",
    "source",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prep",
        help="turn raw DFT frames (extxyz, MPtrj JSON, OUTCAR, vasprun.xml, ASE db) into "
        "a sharded dataset",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="input files or directories (searched recursively)",
    )
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--config", help="YAML file of prep options (command-line flags override it)")
    p.add_argument(
        "--format", choices=FORMATS, help="input format (default auto: by file name and content)"
    )
    p.add_argument(
        "--container", choices=("lmdb", "wds", "both"), help="shard container (default lmdb)"
    )
    p.add_argument("--shard-size", type=int, help="frames per shard (default 10000)")
    p.add_argument("--chunk-frames", type=int, help="frames per chunk task (default 5000)")
    p.add_argument("--workers", type=int, help="parallel chunk processes (default 1)")
    p.add_argument(
        "--launcher",
        choices=("local",),
        default="local",
        help="local: chunk tasks run here, --workers processes at a time",
    )
    p.add_argument(
        "--split", help="ratios by split-group hash (default train=0.9,val=0.05,test=0.05)"
    )
    p.add_argument("--split-salt", help="string mixed into the split hash (default none)")
    p.add_argument(
        "--group-by",
        choices=GROUP_RULES,
        help="split groups: material (default: the material/trajectory id where the input names one, "
        "else the reduced composition), composition, or id (per-frame ids where no material is named: "
        "sibling frames may leak across splits)",
    )
    p.add_argument(
        "--group-by-source",
        action="append",
        metavar="SOURCE=RULE",
        help="the split group rule of one source tag (repeatable)",
    )
    p.add_argument(
        "--group-by-input",
        action="append",
        metavar="INPUT=RULE",
        help="the split group rule of one input file or directory (repeatable)",
    )
    p.add_argument(
        "--energy",
        choices=("uncorrected", "corrected"),
        help="MPtrj, Alexandria: which total energy to take (default uncorrected)",
    )
    p.add_argument(
        "--structure-key",
        help="info key naming the structure (default auto; 'frame': one per frame)",
    )
    p.add_argument(
        "--frame-key", help="info key naming the frame (default auto; 'index': FILE:INDEX)"
    )
    p.add_argument("--energy-key", help="extxyz key of the total energy (default energy)")
    p.add_argument("--forces-key", help="extxyz column of the forces (default forces)")
    p.add_argument("--stress-key", help="extxyz key of the stress (default stress)")
    p.add_argument("--require", help="labels every frame must have (default energy,forces)")
    p.add_argument(
        "--max-force", type=float, help="largest allowed |F| per atom, eV/A (default 50)"
    )
    p.add_argument(
        "--min-distance", type=float, help="closest allowed pair of atoms, A (default 0.5)"
    )
    p.add_argument(
        "--max-energy-per-atom",
        type=float,
        help="largest allowed |energy| per atom, eV (default 1e6; beyond: energy_out_of_bounds)",
    )
    p.add_argument(
        "--max-stress",
        type=float,
        help="largest allowed |stress component|, eV/A^3 (default 100; beyond: stress_out_of_bounds)",
    )
    p.add_argument(
        "--max-atoms",
        type=int,
        help="atoms per frame a reader accepts (default 100000; beyond: too_large, read no further)",
    )
    p.add_argument(
        "--max-line-bytes", type=int, help="longest line a text reader reads (default 1 MiB)"
    )
    p.add_argument(
        "--max-record-bytes",
        type=int,
        help="largest record (an extxyz frame, a JSON entry) a reader reads (default 64 MiB)",
    )
    p.add_argument(
        "--max-energy-residual",
        type=float,
        help="quarantine frames whose per-atom energy lies this far (eV/atom) from the element references "
        "(reason energy_outlier; default: keep all)",
    )
    p.add_argument(
        "--source",
        help="source tag (data set + DFT settings, e.g. MPtrj-PBE) of every frame of these "
        "inputs (default: the reader's; per input: input_sources in --config)",
    )
    p.add_argument("--no-dedup", action="store_true", help="keep identical frames")
    p.add_argument(
        "--dedup-tolerance", type=float, help="grid for identical positions/cell, A (default 1e-5)"
    )
    p.add_argument(
        "--neighbour-cutoff",
        type=float,
        help="cutoff of the mean-neighbours statistic, A (default 5)",
    )
    p.add_argument(
        "--neighbour-sample",
        type=float,
        help="fraction of frames counting neighbours (default 0.05)",
    )
    p.add_argument(
        "--keep-work", action="store_true", help="keep DIR/_work (chunk outputs) after success"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_cluster_options(p)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> PrepConfig:
    """PrepConfig from --config (if any) overlaid with the flags given on the command line."""
    data = read_yaml(args.config) if args.config else {}
    data.update({name: getattr(args, name) for name in _FIELDS if getattr(args, name) is not None})
    data["inputs"], data["out"] = list(args.inputs), args.out
    if args.split is not None:
        data["split"] = parse_ratios(args.split)
    for flag, key in (("group_by_source", "source_group_by"), ("group_by_input", "input_group_by")):
        if getattr(args, flag):
            data[key] = {**data.get(key, {}), **parse_assignments(getattr(args, flag), flag)}
    if args.require is not None:
        data["required"] = [x.strip() for x in args.require.split(",") if x.strip()]
    if args.no_dedup:
        data["dedup"] = False
    if args.keep_work:
        data["keep_work"] = True
    if args.no_progress:
        data["progress"] = False
    return from_dict(
        PrepConfig, data, origin=f"{args.config} + command line" if args.config else "command line"
    )


def run(args: argparse.Namespace) -> int:
    try:
        profile = take_profile(args, positional="inputs") if on_cluster(args) else None
        config = build_config(args)
        if profile is None:
            result = run_prep(config)
        else:  # one array task per unfinished chunk, then the merge; the result only when waiting
            result = submit_and_follow(args, profile, prep_workload(config), config.out)
    except (ReaderError, ConfigError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        print(format_summary(result, config.out))
    return 0
