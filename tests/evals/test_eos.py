"""The EOS fit recovers bulk moduli: an analytic Birch-Murnaghan E(V), and EMT copper against an independent
second derivative of E(V)."""

import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.eos import birchmurnaghan
from ase.units import GPa
from foundation.evals.eos import EosFitError, fit_bulk_modulus
from scipy.optimize import minimize_scalar


class AnalyticEOS(Calculator):
    """E(V) = Birch-Murnaghan with known E0, V0 (per atom), B0, B0'."""

    implemented_properties = ["energy"]

    def __init__(self, v0_per_atom, b0_gpa, bp=4.5, e0=-3.0):
        super().__init__()
        self.params = (e0, b0_gpa * GPa, bp, v0_per_atom)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        e0, b0, bp, v0 = self.params
        self.results = {"energy": n * birchmurnaghan(self.atoms.get_volume() / n, e0, b0, bp, v0)}


def test_recovers_analytic_bulk_modulus_even_off_centre():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    v_atom = atoms.get_volume() / len(atoms)
    # minimum 10% away from the starting volume: outside the first +-6% scan, found by re-centring
    fit = fit_bulk_modulus(atoms, AnalyticEOS(1.1 * v_atom, 137.0))
    assert fit.bulk_modulus == pytest.approx(137.0, rel=1e-4)
    assert fit.v0_per_atom == pytest.approx(1.1 * v_atom, rel=1e-5)


def test_emt_copper_matches_independent_second_derivative():
    atoms = bulk("Cu", "fcc", a=3.6)
    calc = EMT()

    def energy(v):
        a = atoms.copy()
        a.set_cell(atoms.cell * (v / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
        a.calc = calc
        return a.get_potential_energy()

    v_min = minimize_scalar(energy, bracket=(10.0, 11.5, 13.0), tol=1e-10).x
    h = 1e-3 * v_min
    b_fd = v_min * (energy(v_min + h) - 2 * energy(v_min) + energy(v_min - h)) / h**2 / GPa
    fit = fit_bulk_modulus(atoms, calc, strain=0.03)
    assert fit.v0_per_atom == pytest.approx(v_min, rel=1e-3)
    assert fit.bulk_modulus == pytest.approx(b_fd, rel=0.01)
    assert 100 < fit.bulk_modulus < 200  # EMT copper is ~134 GPa


class Flat(Calculator):
    implemented_properties = ["energy"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": -0.01 * self.atoms.get_volume()}  # monotonic: no minimum


def test_curve_without_minimum_is_an_error_with_a_reason():
    with pytest.raises(EosFitError) as info:
        fit_bulk_modulus(bulk("Cu"), Flat())
    assert info.value.reason in {"no_minimum", "fit_failed", "minimum_outside_range"}
