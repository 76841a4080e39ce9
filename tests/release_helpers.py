"""A tiny release directory without ../shared/data: an untrained tiny SchNet in the training run layout (the
eval tests' TINY_MODEL), made-up element references, bundled by `make_release` (the same code as
`foundation release`)."""

from __future__ import annotations

from pathlib import Path

ELEMENT_REFERENCES = {"Na": -1.3, "Cl": -1.8, "Cu": -3.7, "O": -4.9}


def write_tiny_release(root: Path, name: str = "tiny", license: str = "MIT") -> Path:
    """root/run (a run directory) and root/NAME (its release); returns the release directory."""
    import torch
    import yaml
    from foundation.evals.release import make_release

    from foundation import build_potential
    from foundation.config import to_dict
    from foundation.train.checkpoint import export_model
    from tests.evals.conftest import TINY_MODEL

    torch.manual_seed(0)
    potential = build_potential(TINY_MODEL)
    normalization = {"element_references": ELEMENT_REFERENCES, "scale": 0.1, "shift": 0.0}
    potential.set_normalization(**normalization)
    meta = {
        "format": "foundation-potential",
        "model": to_dict(potential.config),
        "normalization": normalization,
        "step": 0,
        "val": {"loss": 1.0},
        "objective": {"name": "efs"},
    }
    run_dir = root / "run"
    for which in ("best", "last"):
        export_model(run_dir / which, potential.state_dict(), meta)
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(
            {"run_dir": str(run_dir), "model": meta["model"], "objective": meta["objective"]}
        )
    )
    return make_release(run_dir, root / name, name=name, license=license)
