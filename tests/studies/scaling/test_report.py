"""The sweep report from synthetic points: the fits valid for the design recover the generating law, the others
are refused with the reason, files are complete and consistent."""

from __future__ import annotations

import json

from foundation.studies.scaling.analysis import FitRules
from foundation.studies.scaling.report import write_scaling_report

from tests.studies.scaling.synthetic import data_points, isoflop_points, results


def test_data_scaling_report_fits_the_generating_law_and_refuses_compute_fits(tmp_path):
    paths = write_scaling_report(results(data_points()), tmp_path, FitRules(n_boot=40))
    out = json.loads(paths["results.json"].read_text())
    analysis = out["analysis"]
    joint = analysis["fits"]["forces_mae"]["L(N,D)"]
    for name, truth in (("alpha", 0.35), ("beta", 0.3)):
        lo, hi = joint["ci"][name]
        assert lo <= truth <= hi and abs(joint["params"][name] - truth) < 0.06
    assert joint["n_points"] == 24  # cells (seed means), not runs
    assert (
        set(analysis["fits"]["loss"]) == {"L(D)", "L(N,D)"} and analysis["weighted"]["loss"]["L(D)"]
    )
    # four model sizes: L(N) has 4 cells for 3 parameters, fewer than 2 per parameter
    assert "4 cells for 3 parameters" in analysis["refused"]["loss"]["L(N)"]
    for fit in ("iso-FLOP profiles", "N_opt(C)", "L_opt(C)"):
        assert analysis["refused"]["loss"][fit].startswith("not valid for design data_scaling")
    assert analysis["validity"]["L(N,D)"]["valid"] and not analysis["validity"]["N_opt(C)"]["valid"]
    md = paths["report.md"].read_text()
    for name in ("loss_vs_params", "loss_vs_data", "joint_fit"):
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[
            :4
        ] == b"\x89PNG" and f"figures/{name}.png" in md
    assert paths["report.html"].read_text().count("data:image/png;base64,") == 3
    assert "broken" in md and "Refused fits" in md and "Frey" in md
    assert "Validation frames of the other sources" in md  # teacher frames' metrics shown apart


def test_iso_flop_report_shows_profiles_and_refuses_the_data_laws(tmp_path):
    paths = write_scaling_report(
        results(isoflop_points(), "iso_flop"), tmp_path, FitRules(design="iso_flop", n_boot=60)
    )
    analysis = json.loads(paths["results.json"].read_text())["analysis"]
    assert len(analysis["profiles"]) == 4 and set(analysis["compute_laws"]) == {
        "N_opt(C)",
        "L_opt(C)",
    }
    assert analysis["refused"]["loss"]["L(N,D)"].startswith("not valid for design iso_flop")
    assert not analysis["fits"]["loss"]
    assert set(p.name for p in (tmp_path / "figures").glob("*.png")) == {
        "isoflop_profiles.png",
        "compute_optimal.png",
    }
    assert "N_opt(C) = " in paths["report.md"].read_text()


def test_fixed_steps_report_refuses_every_fit(tmp_path):
    points = data_points()
    paths = write_scaling_report(
        results(points, "fixed_steps"), tmp_path, FitRules(design="fixed_steps", n_boot=10)
    )
    analysis = json.loads(paths["results.json"].read_text())["analysis"]
    assert not any(analysis["fits"].values())
    assert all(
        "passes over the data move together" in why for why in analysis["refused"]["loss"].values()
    )
    assert "Frey" not in paths["report.md"].read_text()


def test_near_baseline_cells_are_flagged_counted_and_left_out(tmp_path):
    points = data_points()
    weak = {
        p["point_id"] for p in points if p["n_params"] == 2e4 and p["frames"] <= 200
    }  # 2 cells, 4 runs
    for p in points:
        if p["point_id"] in weak:
            p["baseline_loss"] = p["loss"] * 1.05  # within 5% of the trivial baseline
    paths = write_scaling_report(results(points), tmp_path, FitRules(n_boot=20))
    analysis = json.loads(paths["results.json"].read_text())["analysis"]
    assert sorted(analysis["near_baseline"]["loss"]) == ["n20000-D100-conv", "n20000-D200-conv"]
    assert analysis["near_baseline"]["forces_mae"] == []  # its own baseline is far
    assert analysis["fits"]["loss"]["L(N,D)"]["n_points"] == 22
    assert analysis["fits"]["forces_mae"]["L(N,D)"]["n_points"] == 24
    assert "loss: 2 of 24 (n20000-D100-conv, n20000-D200-conv)" in paths[
        "report.md"
    ].read_text().replace("combined loss", "loss")


def test_flagged_cells_can_leave_too_few_and_the_reason_says_so(tmp_path):
    points = [p for p in data_points() if p["n_params"] == 2e6]  # one model: L(D) only
    for p in points:
        if p["frames"] == 100:
            p["baseline_loss"] = p["loss"]
    analysis = json.loads(
        write_scaling_report(results(points), tmp_path, FitRules(n_boot=10))[
            "results.json"
        ].read_text()
    )["analysis"]
    assert analysis["refused"]["loss"]["L(D)"] == (
        "5 cells (1 more left out near the baseline) for 3 parameters; "
        "the fit needs at least 6 (2 per parameter)"
    )
    assert "L(D)" in analysis["fits"]["forces_mae"]
