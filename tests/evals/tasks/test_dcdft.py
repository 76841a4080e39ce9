"""Zero-shot bulk moduli of the dcdft crystals: only the elements the pre-training data hold, the rest listed as
out of domain; the trivial baseline beside the potential's error."""

import numpy as np
import pytest
from ase.calculators.emt import EMT
from foundation.evals.tasks.dcdft import zero_shot_bulk_moduli


def test_out_of_domain_crystals_are_listed_not_fitted_and_the_baseline_is_leave_one_out():
    result = zero_shot_bulk_moduli(
        EMT(), points=7, elements=["Cu", "Al", "Ag", "Fe"], domain={"Cu", "Al", "Ag"}
    )
    assert result["out_of_domain"] == ["Fe"]
    assert {r["id"] for r in result["predictions"]} | {f["id"] for f in result["failures"]} == {
        "Cu",
        "Al",
        "Ag",
    }
    rows = result["predictions"]
    assert len(rows) == 3  # EMT describes these three fcc metals
    t = np.array([r["y_true"] for r in rows])
    expected = np.mean([abs(t[i] - np.delete(t, i).mean()) for i in range(3)])
    assert result["baselines"]["mean"]["mae"] == pytest.approx(expected)
    everything = zero_shot_bulk_moduli(EMT(), points=7, elements=["Cu", "Ni"])
    assert everything["out_of_domain"] == []  # no domain given: nothing is left out
