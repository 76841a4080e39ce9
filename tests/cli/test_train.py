"""`foundation train` argument handling: dotted overrides and --resume resolve to the run's config."""

from __future__ import annotations

import yaml

from foundation.cli.main import build_parser
from foundation.cli.train import resolve


def test_cli_override_names(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": "schnet"}))
    args = build_parser().parse_args(
        [
            "train",
            "--config",
            str(config),
            "data.path=/some/data",
            "train.max_steps=7",
            "run_dir=/some/run",
        ]
    )
    cfg = resolve(args)
    assert (cfg.data.path, cfg.train.max_steps, cfg.run_dir) == ("/some/data", 7, "/some/run")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.yaml").write_text(
        yaml.safe_dump({"model": "schnet", "run_dir": "elsewhere"})
    )
    resumed = resolve(build_parser().parse_args(["train", "--resume", str(tmp_path / "old")]))
    assert resumed.run_dir == str(tmp_path / "old")
