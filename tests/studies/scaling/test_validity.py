"""Which fits a design supports, and the least data a fit needs."""

from __future__ import annotations

from foundation.studies.scaling.validity import design_validity, too_few


def test_each_design_supports_only_its_own_fits():
    valid = {
        d: {f for f, v in design_validity(d).items() if v["valid"]}
        for d in ("data_scaling", "iso_flop", "fixed_steps")
    }
    assert valid == {
        "data_scaling": {"L(N)", "L(D)", "L(N,D)"},
        "iso_flop": {"iso-FLOP profiles", "N_opt(C)", "L_opt(C)"},
        "fixed_steps": set(),
    }
    assert "convergence" in design_validity("iso_flop")["L(N,D)"]["reason"]


def test_too_few_counts_cells_per_parameter_and_distinct_values():
    cells = [{"n_params": n, "frames": d} for n in (1, 2) for d in (10, 20, 40, 80, 160)]
    assert too_few("L(N,D)", cells, min_points_per_parameter=2, min_distinct=3) == (
        "2 distinct model sizes; the fit needs at least 3"
    )
    assert too_few("L(N,D)", cells[:9], min_points_per_parameter=2, min_distinct=2).startswith(
        "9 cells for 5 parameters; the fit needs at least 10"
    )
    assert too_few("L(D)", cells[:5], min_points_per_parameter=1.5, min_distinct=3) is None
    assert "2 more left out" in too_few(
        "L(D)", cells[:3], min_points_per_parameter=2, min_distinct=3, left_out=2
    )


def test_runs_that_ended_at_their_pass_cap_are_named_in_the_verdict():
    assert "cap" not in design_validity("data_scaling")["L(D)"]["reason"]
    reason = design_validity("data_scaling", (3, 12))["L(D)"]["reason"]
    assert (
        "3 of 12 runs ended at the cap" in reason
        and design_validity("data_scaling", (3, 12))["L(D)"]["valid"]
    )
