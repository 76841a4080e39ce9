"""The frame record: one DFT frame with its labels, the unit every part of foundation exchanges.

Units and signs (DESIGN.md): positions and cell in Angstrom (cell rows are lattice vectors), energy total eV,
forces eV/A, stress eV/A^3 with ASE's sign (sigma = (1/V) dE/dstrain; compressed cell -> negative diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

SCHEMA_VERSION = 2  # 2: each record carries a CRC32 of its body (docs/data-format.md)
READABLE_SCHEMA_VERSIONS = (
    1,
    2,
)  # 1: records without a checksum, still read (nothing detects their corruption)
MAX_ATOMIC_NUMBER = 118

# Canonical dtypes the store keeps, bit for bit (docs/data-format.md).
ARRAY_DTYPES = {
    "numbers": np.dtype(np.int64),
    "positions": np.dtype(np.float64),
    "cell": np.dtype(np.float64),
    "pbc": np.dtype(np.bool_),
    "forces": np.dtype(np.float64),
    "stress": np.dtype(np.float64),
    "magmoms": np.dtype(np.float64),
}


class InvalidFrame(ValueError):
    """A frame that breaks the record contract; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


PropertyValue = float | int | str | np.ndarray


@dataclass(eq=False)
class Frame:
    """One DFT frame. Optional labels are None when absent; `properties` holds named extra targets."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    frame_id: str
    structure_id: str
    source: str = ""
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    magmoms: np.ndarray | None = None
    properties: dict[str, PropertyValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, dtype in ARRAY_DTYPES.items():
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.ascontiguousarray(value, dtype=dtype))
        if self.energy is not None:
            self.energy = float(self.energy)
        self.frame_id, self.structure_id, self.source = (
            str(self.frame_id),
            str(self.structure_id),
            str(self.source),
        )

    @property
    def natoms(self) -> int:
        return int(self.numbers.shape[0])

    def validate(self) -> Frame:
        """Check shapes, finiteness, element range and ids; raise InvalidFrame naming the reason."""
        n = self.numbers.shape[0] if self.numbers.ndim == 1 else -1
        expected = {
            "numbers": (n,),
            "positions": (n, 3),
            "cell": (3, 3),
            "pbc": (3,),
            "forces": (n, 3),
            "stress": (3, 3),
            "magmoms": (n,),
        }
        if n <= 0:
            raise InvalidFrame(
                "shape_mismatch",
                f"numbers must be a non-empty 1-d array, got shape {self.numbers.shape}",
            )
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is not None and value.shape != shape:
                raise InvalidFrame(
                    "shape_mismatch", f"{name} has shape {value.shape}, expected {shape}"
                )
        for name in ("positions", "cell", "forces", "stress", "magmoms"):
            value = getattr(self, name)
            if value is not None and not np.isfinite(value).all():
                raise InvalidFrame("non_finite", f"{name} holds non-finite values")
        if self.energy is not None and not np.isfinite(self.energy):
            raise InvalidFrame("non_finite", f"energy is {self.energy}")
        if self.numbers.min() < 1 or self.numbers.max() > MAX_ATOMIC_NUMBER:
            raise InvalidFrame(
                "unknown_element",
                f"atomic numbers must lie in 1..{MAX_ATOMIC_NUMBER}, got "
                f"{sorted(set(self.numbers.tolist()) - set(range(1, MAX_ATOMIC_NUMBER + 1)))}",
            )
        if not self.frame_id:
            raise InvalidFrame("missing_id", "frame_id is empty")
        if not self.structure_id:
            raise InvalidFrame("missing_id", "structure_id is empty")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (absent optional fields omitted)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if v is not None}

    def same_as(self, other: Frame) -> bool:
        """Bit-exact equality of every field, dtypes included."""
        a, b = self.to_dict(), other.to_dict()
        if a.keys() != b.keys() or a["properties"].keys() != b["properties"].keys():
            return False
        return all(_identical(a[k], b[k]) for k in a if k != "properties") and all(
            _identical(a["properties"][k], b["properties"][k]) for k in a["properties"]
        )


def _identical(x: Any, y: Any) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return (
            isinstance(x, np.ndarray)
            and isinstance(y, np.ndarray)
            and x.dtype == y.dtype
            and x.shape == y.shape
            and x.tobytes() == y.tobytes()
        )
    if isinstance(x, float) and isinstance(y, float):
        return np.float64(x).tobytes() == np.float64(y).tobytes()
    return type(x) is type(y) and x == y
