"""Teacher potentials that label synthetic frames offline: CHGNet 0.3.0 (optional extra `teacher`) or ASE's EMT.

CHGNet's weights ship inside the chgnet wheel; they are read with `torch.load(weights_only=True)` (no pickle
code runs). EMT is pure ASE and describes the fcc metals Al Cu Ag Au Ni Pd Pt and their alloys; its H, C, N, O
parameters are not meant for crystals, so they are left out.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import importlib.util
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols

CHGNET_VERSION = "0.3.0"
CHGNET_WEIGHTS = f"pretrained/{CHGNET_VERSION}/chgnet_0.3.0_e29f68s314m37.pth.tar"
EMT_ELEMENTS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")
# H..Bi without the noble gases and the radioactive Tc and Pm.
CHGNET_ELEMENTS = tuple(
    s for s in chemical_symbols[1:84] if s not in {"He", "Ne", "Ar", "Kr", "Xe", "Tc", "Pm"}
)


@dataclass(frozen=True)
class Teacher:
    """A labelling potential: the elements it may see, and the `source` prefix its frames carry."""

    name: str
    source: str
    elements: tuple[str, ...]
    metallic_only: bool


TEACHERS = {
    "chgnet": Teacher(
        "chgnet", f"synthetic-chgnet-{CHGNET_VERSION}", CHGNET_ELEMENTS, metallic_only=False
    ),
    "emt": Teacher("emt", "synthetic-emt", EMT_ELEMENTS, metallic_only=True),
}


def chgnet_available() -> bool:
    """Whether the optional `teacher` extra (chgnet) is installed."""
    return importlib.util.find_spec("chgnet") is not None


def resolve_teacher(name: str) -> Teacher:
    """'auto' is CHGNet when installed, else EMT; 'chgnet' without the extra is an error saying how to get it."""
    if name == "auto":
        name = "chgnet" if chgnet_available() else "emt"
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}: choose auto, {', '.join(TEACHERS)}")
    if name == "chgnet" and not chgnet_available():
        raise ValueError(
            "teacher 'chgnet' needs the optional extra: pip install 'foundation[teacher]' "
            "(or use --teacher emt)"
        )
    return TEACHERS[name]


@cache
def _chgnet_model():
    import torch
    from chgnet.model import CHGNet

    weights = importlib.resources.files("chgnet").joinpath(CHGNET_WEIGHTS)
    with weights.open("rb") as fh:
        state = torch.load(fh, map_location="cpu", weights_only=True)
    with contextlib.redirect_stdout(io.StringIO()):  # chgnet prints its parameter count
        return CHGNet.from_dict(state["model"], mlp_out_bias=False, version=CHGNET_VERSION).eval()


@contextmanager
def one_torch_thread(teacher: Teacher) -> Iterator[None]:
    """Run CHGNet on one torch thread (faster for small cells, and the same numerics in every process)."""
    if teacher.name != "chgnet":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_calculator(teacher: Teacher) -> Calculator:
    """A fresh ASE calculator for `teacher` (the CHGNet model itself is loaded once per process)."""
    if teacher.name == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    from chgnet.model.dynamics import CHGNetCalculator

    model = _chgnet_model()
    with contextlib.redirect_stdout(io.StringIO()):  # and its device
        return CHGNetCalculator(model=model, use_device="cpu")


def snapshot(atoms: Atoms) -> Atoms:
    """A copy of `atoms` holding its calculator's energy, forces, stress (ASE sign) and magmoms when given."""
    results = {
        "energy": float(atoms.get_potential_energy()),
        "forces": atoms.get_forces().copy(),
        "stress": atoms.get_stress().copy(),
    }
    magmoms = atoms.calc.results.get("magmoms")
    if magmoms is not None:
        results["magmoms"] = magmoms.copy()
    copy = atoms.copy()
    copy.calc = SinglePointCalculator(copy, **results)
    return copy
