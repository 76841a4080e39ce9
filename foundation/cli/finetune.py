"""`foundation finetune --from RELEASE_OR_RUN_DIR`: fine-tune a potential on your own E/F/S frames, starting from
its weights and normalisers, with element references re-fitted for your data (the training run of `foundation
train` with a `finetune:` section; the run releases like any other and its model card names its parent)."""

from __future__ import annotations

import argparse
from pathlib import Path

from foundation.cli import train
from foundation.cli.cluster import add_cluster_options
from foundation.resources import config_file

DEFAULT_RECIPE = config_file("finetune", "efs")
RAW = argparse.RawDescriptionHelpFormatter
EPILOG = """examples:
  foundation finetune --from releases/efs --config configs/finetune/efs.yaml data.path=runs/data/mine \\
      train.max_steps=500 run_dir=runs/finetune/mine
  foundation finetune --from runs/train/efs data.path=runs/data/mine run_dir=runs/finetune/mine \\
      finetune.freeze_layers=2 finetune.backbone_lr_scale=0.05
  foundation finetune --from releases/efs data.path=runs/data/mine run_dir=runs/finetune/mine \\
      finetune.replay_path=runs/data/pretrain finetune.replay_fraction=0.2      replay pre-training frames
  foundation release runs/finetune/mine --out releases/mine                     its card names the parent

--from takes a release directory (checksums verified) or a training run directory (finetune.parent_which=best|last).
data.path is a dataset prepared with `foundation prep`; its manifest's element references replace the parent's.
An element of your data that the parent never saw is an error naming it. Rerunning into the same run_dir resumes."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune a released potential on your E/F/S frames",
        description=__doc__,
        formatter_class=RAW,
        epilog=EPILOG,
    )
    p.add_argument(
        "--from",
        dest="parent",
        required=True,
        metavar="RELEASE_OR_RUN_DIR",
        help="the potential to start from: a release directory or a training run directory",
    )
    p.add_argument(
        "--config",
        default=str(DEFAULT_RECIPE),
        help="a fine-tuning recipe (default configs/finetune/efs.yaml)",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides: data.path=DIR train.max_steps=N run_dir=DIR finetune.freeze_layers=K ...",
    )
    p.add_argument(
        "--launcher",
        choices=("local", "torchrun"),
        default="local",
        help="local: this process; torchrun: --nproc-per-node processes on this machine",
    )
    p.add_argument(
        "--nproc-per-node", type=int, default=1, help="processes for --launcher torchrun"
    )
    add_cluster_options(p)
    p.set_defaults(func=run, resume=None, allow_config_change=False)


def run(args: argparse.Namespace) -> int:
    """`foundation train` with finetune.parent set (user errors end as one line: foundation.cli.main)."""
    args.overrides = [f"finetune.parent={Path(args.parent).resolve()}", *args.overrides]
    return train.run(args)
