"""`foundation sweep` end to end on real DFT frames: configs/sweeps/tiny.yaml (3 models x 3 nested data sizes,
10 steps each: the fewest that exercise training, validation and checkpoints within the test budget; design
fixed_steps, so the report refuses the fits), the report, no rerun of finished points, and a failed point retried
alone, two points at a time (--workers 2)."""

from __future__ import annotations

import json

import pytest

from foundation.cli.main import main
from tests.conftest import REPO


def sweep(out, data, *extra) -> int:
    return main(
        [
            "sweep",
            "--config",
            str(REPO / "configs/sweeps/tiny.yaml"),
            "--workers",
            "2",
            f"data.source={data}",
            f"out_dir={out}",
            f"base_config={REPO / 'configs/pretrain/efs_derivative.yaml'}",
            *extra,
        ]
    )


def marker_times(out) -> dict[str, int]:
    return {
        p.parent.name: p.stat().st_mtime_ns for p in (out / "points").glob("*/sweep_point.json")
    }


def test_tiny_sweep_runs_fits_reports_and_retries(real_dataset, tmp_path):
    out = tmp_path / "sweep"
    assert sweep(out, real_dataset) == 0
    results = json.loads((out / "report" / "results.json").read_text())
    points = results["points"]
    assert len(points) == 9 and not results["failed"] and not results["pending"]
    sizes = sorted({p["n_params"] for p in points})
    frames = sorted({p["frames"] for p in points})
    assert len(sizes) == 3 and len(frames) == 3 and frames[0] >= 25
    for p in points:
        assert (
            p["steps"] == 10
            and p["flops"] == pytest.approx(10 * p["flops_per_step"])
            and p["flops"] > 0
        )
        assert p["device_hours"] > 0 and set(p["metrics"]) == {
            "energy_mae",
            "forces_mae",
            "stress_mae",
        }
        assert (
            out / "points" / p["point_id"] / "config.yaml"
        ).exists()  # the training run's resolved config
    # bigger models cost more per step
    per_step = {p["n_params"]: p["flops_per_frame"] for p in points}
    assert per_step[sizes[0]] < per_step[sizes[1]] < per_step[sizes[2]]
    analysis = results["analysis"]
    # design fixed_steps: passes over the data change with D, so every fit is refused with the reason
    assert not any(analysis["fits"].values()) and len(analysis["cells"]) == 9
    assert all(
        why.startswith("not valid for design fixed_steps")
        for why in analysis["refused"]["loss"].values()
    )
    html = (out / "report" / "report.html").read_text()
    assert (
        html.count("data:image/png;base64,") == 2
    )  # loss against N and against D, with seed error bars

    # a finished point is never rerun; a failed one stays failed until retried, alone
    before = marker_times(out)
    victim = out / "points" / points[0]["point_id"]
    (victim / "sweep_point.json").unlink()
    (victim / "sweep_failed.json").write_text(
        json.dumps({"point_id": victim.name, "error": "RuntimeError: node lost", "traceback": ""})
    )
    assert sweep(out, real_dataset) == 1
    again = json.loads((out / "report" / "results.json").read_text())
    assert [f["point_id"] for f in again["failed"]] == [victim.name] and len(again["points"]) == 8
    assert victim.name in (out / "report" / "report.md").read_text()
    assert marker_times(out) == {k: v for k, v in before.items() if k != victim.name}
    assert sweep(out, real_dataset, "--retry", victim.name) == 0
    after = marker_times(out)
    assert after.keys() == before.keys() and all(
        after[k] == before[k] for k in before if k != victim.name
    )
    assert not (victim / "sweep_failed.json").exists()
    assert sweep(out, real_dataset, "--only-report") == 0
    assert marker_times(out) == after
