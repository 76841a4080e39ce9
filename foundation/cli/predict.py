"""`foundation predict MODEL FILES... --out OUT.extxyz`: label frames with a potential's energy, per-atom energies,
forces and stress, in atoms-balanced batches on CPU or GPU, with a progress bar."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import ase.io
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress

from foundation.calculator import load_calculator
from foundation.data.ase_convert import atoms_from_frame, frame_from_atoms
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.readers import READERS, ReaderError
from foundation.data_prep.readers.auto import detect_format, expand_inputs
from foundation.errors import UserError
from foundation.progress import progress_bar

RAW = argparse.RawDescriptionHelpFormatter
EPILOG = """examples:
  foundation predict releases/efs frames.extxyz --out labelled.extxyz
  foundation predict releases/efs OUTCAR vasprun.xml structures.db --out labelled.extxyz --device cuda
  foundation predict runs/finetune/cu --which last runs/data/raw/ --out labelled.extxyz --max-atoms 4096

MODEL is a release directory (checksums are verified) or a training run directory (its best/ or last/ weights).
FILES are any input the readers of `foundation prep` take (extxyz, MPtrj JSON, VASP OUTCAR / vasprun.xml, ASE db;
directories are searched), or with --format ase anything ase.io reads (CIF, POSCAR, ...). The output holds, per frame and in input order: energy, free_energy, forces, per-atom
energies (column `energies`) and, for cells periodic along all three axes, stress (ASE sign, eV/A^3), readable
with ase.io.read; the input's own labels, when it has them, are kept as ref_energy, ref_forces and ref_stress, and
info keys frame_id, structure_id and file say where each frame came from."""

READ_CHUNK = 1024  # frames read, predicted and written together


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="label frames with a potential (energy, forces, stress, per-atom energies)",
        description=__doc__,
        formatter_class=RAW,
        epilog=EPILOG,
    )
    p.add_argument("model", help="release directory or training run directory")
    p.add_argument(
        "files", nargs="+", help="input files or directories (any format `foundation prep` reads)"
    )
    p.add_argument("--out", required=True, help="output extended XYZ file (written atomically)")
    p.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N or auto (cuda when available; default auto)",
    )
    p.add_argument("--max-atoms", type=int, default=2048, help="atoms per batch (default 2048)")
    p.add_argument(
        "--format",
        default="auto",
        help="input format: auto (detected per file, default), one of `foundation prep`'s formats, or "
        "ase (any file ase.io.read takes: CIF, POSCAR, ...)",
    )
    p.add_argument(
        "--which",
        choices=["best", "last"],
        default="best",
        help="weights of a run directory (default best)",
    )
    p.add_argument(
        "--source",
        help="data source whose energies to predict, for a model trained on several "
        "(default: the model's energy_source)",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (as `foundation --quiet` gives)"
    )
    p.set_defaults(func=run_predict)


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available here")
    return name


def iter_frames(paths: list[str], fmt: str) -> Iterator[tuple[str, object]]:
    """(file name, Frame) of every record of the inputs, in order; an unreadable record, or one without atoms,
    is a ReaderError naming the file, the record and the reason."""
    if fmt == "ase":
        yield from _iter_ase_frames(paths)
        return
    config = PrepConfig(required=[])
    for path, kind, name in expand_inputs(paths, fmt):
        for piece in READERS[kind].plan(path, name, 10_000):
            for record in READERS[kind].read(piece, config):
                if record.frame is None:
                    raise ReaderError(f"{path}: record {record.where}: {record.error}")
                yield name, _with_atoms(record.frame, path, record.where)


def _with_atoms(frame, path, where) -> object:
    """`frame`, unless it holds no atoms: nothing to predict, a ReaderError naming file and record."""
    if len(frame.numbers) == 0:
        raise ReaderError(f"{path}: record {where}: a structure with 0 atoms; nothing to predict")
    return frame


def _iter_ase_frames(paths: list[str]) -> Iterator[tuple[str, object]]:
    """Frames of files read by ase.io (format guessed by ASE from the name and content). A file that a prep
    reader reads goes through it (bounded lines, atoms and records); ase.io may hold a file whole, so any other
    file larger than max_record_bytes is refused."""
    limit = PrepConfig().max_record_bytes
    for path in paths:
        kind = detect_format(path)
        if kind is not None:
            yield from iter_frames([path], kind)
            continue
        if os.path.getsize(path) > limit:
            raise ReaderError(
                f"{path}: {os.path.getsize(path)} bytes, more than max_record_bytes {limit} that "
                "ase.io would read at once; convert it to extended XYZ"
            )
        name = Path(path).name
        try:
            structures = list(ase.io.iread(path, index=":"))
        except Exception as exc:  # ASE raises many types for unreadable files
            raise ReaderError(
                f"{path}: ase.io cannot read it ({type(exc).__name__}: {exc})"
            ) from None
        for index, atoms in enumerate(structures):
            frame = frame_from_atoms(
                atoms, frame_id=f"{name}:{index}", structure_id=f"{name}:{index}", source=name
            )
            yield name, _with_atoms(frame, path, index)


def labelled_atoms(frame, name: str, result: dict):
    """The frame as Atoms with the prediction as its calculator results and its own labels as ref_*."""
    atoms = atoms_from_frame(frame)
    atoms.info.update(frame_id=frame.frame_id, structure_id=frame.structure_id, file=name)
    if frame.energy is not None:
        atoms.info["ref_energy"] = frame.energy
    if frame.stress is not None:
        atoms.info["ref_stress"] = full_3x3_to_voigt_6_stress(frame.stress)
    if frame.forces is not None:
        atoms.arrays["ref_forces"] = frame.forces
    atoms.calc = SinglePointCalculator(atoms, **result)
    return atoms


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_files(
    calc,
    paths: list[str],
    out: str | os.PathLike,
    *,
    fmt: str = "auto",
    max_atoms: int = 2048,
    progress: bool = True,
) -> int:
    """Label every frame of `paths` with `calc` into the extxyz file `out` (replaced atomically); returns frames."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    count = 0
    try:
        with (
            open(tmp, "w") as fh,
            progress_bar(unit="frame", desc="predict", enabled=progress) as bar,
        ):
            for chunk in _chunks(iter_frames(paths, fmt), READ_CHUNK):
                results = calc.predict(
                    [atoms_from_frame(frame) for _, frame in chunk], max_atoms=max_atoms
                )
                written = [
                    labelled_atoms(frame, name, result)
                    for (name, frame), result in zip(chunk, results)
                ]
                ase.io.write(fh, written, format="extxyz")
                count += len(chunk)
                bar.update(len(chunk))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def run_predict(args: argparse.Namespace) -> int:
    """User errors (model, inputs, device) end as one line: foundation.cli.main."""
    calc = load_calculator(
        args.model, which=args.which, device=_device(args.device), source=args.source
    )
    count = predict_files(
        calc,
        args.files,
        args.out,
        fmt=args.format,
        max_atoms=args.max_atoms,
        progress=not args.no_progress,
    )
    print(f"{count} frames labelled on {calc.device}: {args.out}")
    return 0
