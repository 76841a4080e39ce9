"""The sweep report from synthetic points: fits recover the generating law, files are complete and consistent."""

from __future__ import annotations

import json

import numpy as np

from foundation.studies.scaling.report import write_scaling_report


def synthetic_results(n_sizes=(2e4, 1e5, 5e5, 2e6), d_sizes=(200, 800, 3200, 12800), steps=(1000,)) -> dict:
    rng = np.random.default_rng(0)
    points = []
    for n in n_sizes:
        for d in d_sizes:
            for s in steps:
                force = 0.02 + 4 * n ** -0.35 + 1.5 * d ** -0.3
                energy = force / 10
                noise = np.exp(rng.normal(0, 0.01, 2))
                metrics = {"val/force_mae": force * noise[0], "val/energy_mae": energy * noise[1]}
                points.append({"point_id": f"n{int(n)}-d{d}-s{s}", "model": f"n{int(n)}", "n_params": int(n),
                               "frames": d, "steps": s, "frames_per_step": 8, "flops_per_frame": 30 * n,
                               "flops": 30 * n * 8 * s, "device_hours": 0.01, "metrics": metrics,
                               "loss": sum(metrics.values())})
    return {"sweep": {"name": "synthetic", "base_config": "base.yaml", "data_source": "data", "data_seed": 0,
                      "loss_formula": "1 x val/force_mae + 1 x val/energy_mae", "command": "foundation sweep ..."},
            "created": "now", "confidence": 0.95, "metric_names": ["val/force_mae", "val/energy_mae"],
            "points": points, "failed": [{"point_id": "broken", "error": "RuntimeError: boom"}], "pending": []}


def test_report_fits_the_generating_law_and_embeds_every_figure(tmp_path):
    paths = write_scaling_report(synthetic_results(), tmp_path, n_boot=40)
    results = json.loads(paths["results.json"].read_text())
    fits = results["analysis"]["fits"]
    joint = fits["val/force_mae"]["L(N,D)"]
    assert abs(joint["params"]["alpha"] - 0.35) < 0.05 and abs(joint["params"]["beta"] - 0.3) < 0.05
    assert set(fits["loss"]) == {"L(N)", "L(D)", "L(N,D)"}
    assert fits["loss"]["L(N)"]["n_points"] == 4 and fits["loss"]["L(N,D)"]["n_points"] == 16
    # at a fixed step budget FLOPs do not grow with D: the cheapest model's best point is its largest D
    assert results["analysis"]["frontier"][0] == "n20000-d12800-s1000"
    assert abs(results["analysis"]["flops_model"]["exponent"] - 1.0) < 1e-9
    assert len(results["analysis"]["allocation"]) == 7
    html = paths["report.html"].read_text()
    md = paths["report.md"].read_text()
    for name in ("loss_vs_params", "loss_vs_data", "joint_fit", "compute_frontier"):
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"figures/{name}.png" in md
    assert html.count("data:image/png;base64,") == 4
    assert "broken" in md and "Frey" in md


def test_report_with_too_few_sizes_says_which_laws_it_skipped(tmp_path):
    results = synthetic_results(n_sizes=(1e5,), d_sizes=(100, 400, 1600))
    paths = write_scaling_report(results, tmp_path, n_boot=20)
    analysis = json.loads(paths["results.json"].read_text())["analysis"]
    assert "L(N)" in analysis["skipped"] and "L(N,D)" in analysis["skipped"]
    assert analysis["fits"]["loss"]["L(D)"]["ci"] is None  # three points, three parameters: exact
    assert "not fitted" in paths["report.md"].read_text()


def test_partial_grid_fits_each_law_where_the_points_allow(tmp_path):
    results = synthetic_results()
    # the largest model has finished only two data sizes: L(D) falls back to a model with all four
    results["points"] = [p for p in results["points"] if not (p["n_params"] == 2e6 and p["frames"] < 3200)]
    paths = write_scaling_report(results, tmp_path, n_boot=20)
    analysis = json.loads(paths["results.json"].read_text())["analysis"]
    assert analysis["fits"]["loss"]["L(D)"]["n_points"] == 4
    assert set(analysis["selections"]["L(D)"]) == {f"n500000-d{d}-s1000" for d in (200, 800, 3200, 12800)}
    assert analysis["fits"]["loss"]["L(N)"]["n_points"] == 4

