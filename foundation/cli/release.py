"""`foundation release`: bundle a trained run (fp32 EMA weights, config, normalisers, element references,
pre-training data digest, eval report, model card, SHA256SUMS) for `foundation.load_calculator`."""

from __future__ import annotations

import argparse

from foundation.evals.release import make_release
from foundation.hub import push_release, require_hub
from foundation.release import verify_checksums
from foundation.train.run_layout import BEST, EXPORTS

RAW = argparse.RawDescriptionHelpFormatter
EPILOG = """examples:
  foundation release runs/pretrain/schnet --out releases/schnet-v1
  foundation release runs/pretrain/schnet --out releases/schnet-v1 --report runs/eval/full --license CC-BY-4.0

  foundation release runs/pretrain/schnet --out releases/schnet-v1 --push my-org/schnet-v1

then in Python:  calc = foundation.load_calculator("releases/schnet-v1")  (verifies SHA256SUMS first)

The release directory is a Hugging Face model repository; --push REPO_ID uploads it (needs `pip install
huggingface_hub` and a token: HF_TOKEN or `huggingface-cli login`). Others get it back with
`huggingface-cli download REPO_ID --local-dir $FOUNDATION_MODELS/NAME` and load it by NAME."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "release",
        help="bundle a trained run as a checksummed release with a model card",
        description=__doc__,
        formatter_class=RAW,
        epilog=EPILOG,
    )
    p.add_argument("run_dir", help="training run directory (config.yaml, best/ or last/ weights)")
    p.add_argument(
        "--out", required=True, help="release directory to create (must not exist or be empty)"
    )
    p.add_argument(
        "--report", help="eval output directory of these weights (foundation eval --out) to include"
    )
    p.add_argument(
        "--which", choices=EXPORTS, default=BEST, help="weights to release (default best)"
    )
    p.add_argument("--license", default="MIT", help="license of the released weights (default MIT)")
    p.add_argument("--name", help="model name in the card (default: the run directory's name)")
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="release a run that stopped before its planned steps, or with an eval report missing units, "
        "marked incomplete in release.json and on the model card (refused without it)",
    )
    p.add_argument(
        "--push", metavar="REPO_ID", help="then upload it to this Hugging Face model repository"
    )
    p.add_argument(
        "--private", action="store_true", help="with --push: create the repository private"
    )
    p.set_defaults(func=run_release)


def run_release(args: argparse.Namespace) -> int:
    if args.push:
        require_hub()
    out = make_release(
        args.run_dir,
        args.out,
        report=args.report,
        which=args.which,
        license=args.license,
        name=args.name,
        allow_partial=args.allow_partial,
    )
    files = verify_checksums(out)
    print(
        f"release {out}: {len(files)} files checksummed; load with foundation.load_calculator({str(out)!r})"
    )
    if args.push:
        print(f"pushed to {push_release(out, args.push, private=args.private)}")
    return 0
