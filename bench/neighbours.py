"""Neighbour-list benchmark: foundation's torch radius_graph_pbc against matscipy's C neighbour list and ASE's.

All real DFT frames of ../shared/data/dft (~3.5k frames, ~54k atoms), at each cutoff: ours on CPU as one batch and as
batches of --batch-size structures (what a DataLoader worker builds), matscipy and ASE frame by frame (they take one
structure per call); then one large supercell (our cell-list path) against matscipy. Edge counts are cross-checked. Times are the best of --repeats (ASE: one pass, on every
--ase-stride-th frame, scaled to all frames); CPU time (process time) is printed beside wall time because wall time
is noisy on a shared machine. With CUDA, ours is also timed on the GPU (float64 and float32).

    python bench/neighbours.py [--cutoffs 5 6] [--threads 1] [--batch-size 64] [--ase-stride 1] [--supercell 12]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase.neighborlist import neighbor_list as ase_neighbor_list
from matscipy.neighbours import neighbour_list as matscipy_neighbour_list

from foundation.data.graph import radius_graph_pbc

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dft"


def load_frames(data: Path) -> list:
    frames = []
    for path in sorted(data.glob("*.xyz")):
        frames += ase.io.read(path, index=":")
    if not frames:
        raise SystemExit(f"no frames under {data}")
    return frames


def as_tensors(frames: list, device: str = "cpu", dtype=torch.float64):
    natoms = torch.tensor([len(a) for a in frames])
    return (torch.tensor(np.concatenate([a.positions for a in frames]), dtype=dtype, device=device),
            torch.tensor(np.stack([np.asarray(a.cell[:]) for a in frames]), dtype=dtype, device=device),
            torch.tensor(np.stack([a.pbc for a in frames]), device=device),
            torch.repeat_interleave(torch.arange(len(frames)), natoms).to(device))


def timed(fn, repeats: int, sync=lambda: None) -> tuple[float, float, int]:
    """(best wall s, best CPU s, edges) over repeats."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        edges = fn()
        sync()
        best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, edges


def ours(batches: list, cutoff: float) -> int:
    return sum(radius_graph_pbc(*batch, cutoff)[0].shape[1] for batch in batches)


def per_frame(library, frames: list, cutoff: float) -> int:
    return sum(len(library("i", atoms, cutoff)) for atoms in frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of extxyz files (default ../shared/data/dft)")
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[5.0, 6.0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (matscipy and ASE use one)")
    parser.add_argument("--batch-size", type=int, default=64, help="structures per batch for the batched timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ase-stride", type=int, default=1, help="time ASE on every n-th frame, scaled to all")
    parser.add_argument("--supercell", type=int, default=12, help="repeats per axis of the large-cell timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    frames = load_frames(args.data)
    whole = [as_tensors(frames)]
    batched = [as_tensors(frames[k:k + args.batch_size]) for k in range(0, len(frames), args.batch_size)]
    ase_frames = frames[::args.ase_stride]
    scale = len(frames) / len(ase_frames)
    print(f"{len(frames)} frames, {sum(len(a) for a in frames)} atoms; torch {torch.__version__}, "
          f"{args.threads} CPU thread(s); ASE on {len(ase_frames)} frames x {scale:.2f}")
    for cutoff in args.cutoffs:
        rows = {
            "ours, CPU, one batch": timed(lambda: ours(whole, cutoff), args.repeats),
            f"ours, CPU, batches of {args.batch_size}": timed(lambda: ours(batched, cutoff), args.repeats),
            "matscipy (C), per frame": timed(lambda: per_frame(matscipy_neighbour_list, frames, cutoff), args.repeats),
        }
        wall, cpu, edges = timed(lambda: per_frame(ase_neighbor_list, ase_frames, cutoff), 1)
        rows["ASE, per frame"] = (wall * scale, cpu * scale, None)
        if torch.cuda.is_available():
            for dtype in (torch.float64, torch.float32):
                gpu_whole = [as_tensors(frames, "cuda", dtype)]
                gpu_batched = [as_tensors(frames[k:k + args.batch_size], "cuda", dtype)
                               for k in range(0, len(frames), args.batch_size)]
                name = str(dtype).replace("torch.", "")
                ours(gpu_batched[:2], cutoff)  # warm-up
                rows[f"ours, GPU {name}, one batch"] = timed(lambda: ours(gpu_whole, cutoff), args.repeats,
                                                             torch.cuda.synchronize)
                rows[f"ours, GPU {name}, batches of {args.batch_size}"] = timed(
                    lambda: ours(gpu_batched, cutoff), args.repeats, torch.cuda.synchronize)
        reference_edges = rows["matscipy (C), per frame"][2]
        for name, (_, _, edges) in rows.items():
            if edges is not None and "float32" not in name and edges != reference_edges:
                raise SystemExit(f"{name}: {edges} edges, matscipy {reference_edges}")
        print(f"\ncutoff {cutoff} A: {reference_edges} edges")
        report(rows, "matscipy (C), per frame")
        large = frames[3].repeat(args.supercell)  # one large cell: our cell-list path
        rows = {"ours, CPU, cell list": timed(lambda: ours([as_tensors([large])], cutoff), args.repeats),
                "matscipy (C)": timed(lambda: per_frame(matscipy_neighbour_list, [large], cutoff), args.repeats)}
        if rows["ours, CPU, cell list"][2] != rows["matscipy (C)"][2]:
            raise SystemExit(f"large cell: {rows['ours, CPU, cell list'][2]} edges, matscipy {rows['matscipy (C)'][2]}")
        print(f"one {args.supercell}^3 supercell of frame 3 ({len(large)} atoms, {rows['matscipy (C)'][2]} edges)")
        report(rows, "matscipy (C)")


def report(rows: dict, reference: str) -> None:
    ref_wall, ref_cpu, _ = rows[reference]
    print(f"{'':36s} {'wall s':>8s} {'CPU s':>8s} {'matscipy/this (wall)':>21s} {'(CPU)':>7s}")
    for name, (wall, cpu, _) in rows.items():
        print(f"{name:36s} {wall:8.3f} {cpu:8.3f} {ref_wall / wall:21.2f} {ref_cpu / cpu:7.2f}")


if __name__ == "__main__":
    main()
