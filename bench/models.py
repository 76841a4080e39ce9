"""Training-step throughput of every backbone on real DFT frames, beside PyG's reference SchNet in the same run.

One step = forward, forces and stress by autograd (create_graph), an E/F/S loss, backward, optimiser step.
PyG's torch_geometric.nn.models.SchNet gets the same hyper-parameters as configs/model/schnet.yaml and our graph
(its radius_graph needs torch_cluster, so its interaction_graph is replaced by our periodic edges), and does the
same step; the ratio ours/PyG is printed. Then parameter count and step time of each scalable-family size.

    python bench/models.py                          # CPU, fp32, batches of 32 MPtrj frames
    python bench/models.py --device cuda --dtype bf16
    python bench/models.py --models schnet --sizes --rounds 3   # only ours vs PyG SchNet, more samples
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from ase.io import read
from torch import nn

from foundation.data.ase_convert import frame_from_atoms
from foundation.data.batch import AtomsBatch, collate_frames
from foundation.data.graph import edge_vectors
from foundation.models import build_potential

REPO = Path(__file__).resolve().parents[1]
BACKBONES = ["cgcnn", "schnet", "mpnn", "torchmd_et", "scalable-s"]
SCALABLE = ["scalable-xs", "scalable-s", "scalable-m", "scalable-l", "scalable-xl"]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load_frames(data: Path, count: int) -> list:
    atoms_list = read(data / "dft" / "mptrj-random-1k.xyz", index=f":{count}")
    return [
        frame_from_atoms(a, frame_id=str(k), structure_id=str(k)) for k, a in enumerate(atoms_list)
    ]


def make_batches(frames: list, size: int, cutoff: float, device: torch.device) -> list[AtomsBatch]:
    return [
        collate_frames(frames[k : k + size], cutoff=cutoff).to(device)
        for k in range(0, len(frames) - size + 1, size)
    ]


def efs_loss(energy, forces, stress, batch: AtomsBatch):
    """MSE of energy per atom, forces and stress against the DFT labels (float32)."""
    energy, forces, stress = energy.float(), forces.float(), stress.float()
    return (
        ((energy - batch.energy) / batch.natoms).pow(2).mean()
        + (forces - batch.forces).pow(2).mean()
        + (stress - batch.stress).pow(2)[batch.has_stress].mean()
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    steps: dict, batches: list[AtomsBatch], device: torch.device, warmup: int, rounds: int
) -> dict:
    """Run the step functions round-robin (each round: every model once per batch), so that all models see the
    same batches and the same machine load. Returns per model: atoms/s by wall clock, atoms per CPU-second of
    this process (robust to other processes sharing the cores; CPU runs only), seconds per step (wall)."""
    for step in steps.values():
        for k in range(warmup):
            step(batches[k % len(batches)])
    totals = {name: [0, 0.0, 0.0, 0] for name in steps}
    for _ in range(rounds):
        for batch in batches:
            for name, step in steps.items():
                sync(device)
                wall, cpu = time.perf_counter(), time.process_time()
                step(batch)
                sync(device)
                total = totals[name]
                total[0] += int(batch.natoms.sum())
                total[1] += time.perf_counter() - wall
                total[2] += time.process_time() - cpu
                total[3] += 1
    return {
        name: {
            "atoms_per_s": atoms / wall,
            "atoms_per_cpu_s": atoms / cpu if device.type == "cpu" else None,
            "s_per_step": wall / count,
        }
        for name, (atoms, wall, cpu, count) in totals.items()
    }


def ours_step(potential, dtype: torch.dtype):
    optimizer = torch.optim.Adam(potential.parameters(), lr=1e-4)

    def step(batch: AtomsBatch) -> None:
        out = potential(batch.to(dtype=potential.geometry_dtype))
        loss = efs_loss(out["energy"], out["forces"], out["stress"], batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


class GivenGraph(nn.Module):
    """Stands in for PyG SchNet's RadiusInteractionGraph: returns our periodic edges and their lengths, computed
    from the displaced positions and cell of the current step (so forces and stress flow through them)."""

    def __init__(self):
        super().__init__()
        self.current: tuple | None = None

    def forward(self, pos, batch):
        cell, edge_index, shifts, dtype = self.current
        lengths = torch.linalg.vector_norm(
            edge_vectors(pos, cell, batch, edge_index, shifts), dim=-1
        )
        return edge_index, lengths.to(dtype)


def pyg_schnet_step(config, device: torch.device, dtype: torch.dtype):
    from torch_geometric.nn.models import SchNet

    b = config.backbone
    model = (
        SchNet(
            hidden_channels=b.hidden,
            num_filters=b.num_filters or b.hidden,
            num_interactions=b.layers,
            num_gaussians=b.num_radial,
            cutoff=b.cutoff,
            readout="add",
        )
        .to(device, dtype)
        .train()
    )
    model.interaction_graph = GivenGraph()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    geometry = torch.promote_types(dtype, torch.float32)

    def step(batch: AtomsBatch) -> None:
        batch = batch.to(dtype=geometry)
        positions = batch.positions.detach().requires_grad_(True)
        strain = torch.zeros_like(batch.cell, requires_grad=True)
        sym = 0.5 * (strain + strain.transpose(1, 2))
        displaced = positions + torch.bmm(positions.unsqueeze(1), sym[batch.batch]).squeeze(1)
        cell = batch.cell + torch.bmm(batch.cell, sym)
        model.interaction_graph.current = (cell, batch.edge_index, batch.shifts, dtype)
        energy = model(batch.numbers, displaced, batch.batch).squeeze(-1)
        grads = torch.autograd.grad(energy.float().sum(), [positions, strain], create_graph=True)
        volume = torch.linalg.det(batch.cell).abs().view(-1, 1, 1)
        loss = efs_loss(energy, -grads[0], grads[1] / volume, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _row(name: str, row: dict) -> str:
    params = f"{row['params']:,}" if row.get("params") else ""
    cpu = f"{row['atoms_per_cpu_s']:.0f}" if row.get("atoms_per_cpu_s") else "-"
    return f"{name:<24}{params:>12}{row['atoms_per_s']:>10.0f}{cpu:>13}{row['s_per_step']:>9.3f}"


def build(name: str, device: torch.device, dtype: torch.dtype):
    torch.manual_seed(0)
    return build_potential(name).to(device, dtype).train()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--batch-frames", type=int, default=32)
    parser.add_argument(
        "--scalable-frames", type=int, default=8, help="frames per batch for the size sweep"
    )
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--rounds", type=int, default=1, help="passes over the batches (each model, each batch)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    parser.add_argument(
        "--models",
        nargs="*",
        default=BACKBONES,
        help="backbone configs measured beside PyG SchNet (none: skip)",
    )
    parser.add_argument("--sizes", nargs="*", default=SCALABLE)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    frames = load_frames(args.data, args.batch_frames * args.batches)
    cutoff = build_potential("schnet").cutoff
    batches = make_batches(frames, args.batch_frames, cutoff, device)
    natoms = np.mean([int(b.natoms.sum()) for b in batches])
    nedges = np.mean([int(b.edge_index.shape[1]) for b in batches])
    print(
        f"device {device}, {args.dtype}, {torch.get_num_threads()} threads; batches of {args.batch_frames} MPtrj "
        f"frames: {natoms:.0f} atoms, {nedges:.0f} edges (cutoff {cutoff} A)"
    )
    results: dict = {
        "device": str(device),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "atoms_per_batch": natoms,
        "edges_per_batch": nedges,
        "backbones": {},
        "scalable": {},
    }

    header = f"{'model':<24}{'params':>12}{'atoms/s':>10}{'atoms/CPU-s':>13}{'s/step':>9}"
    if args.models:  # our backbones and PyG's SchNet, interleaved on the same batches
        print("\n" + header)
        models = {
            name: build(name, device, dtype) for name in dict.fromkeys([*args.models, "schnet"])
        }
        steps = {name: ours_step(model, dtype) for name, model in models.items()}
        steps["PyG SchNet (reference)"] = pyg_schnet_step(models["schnet"].config, device, dtype)
        figures = measure(steps, batches, device, args.warmup, args.rounds)
        for name, row in figures.items():
            row["params"] = (
                sum(p.numel() for p in models[name].parameters()) if name in models else None
            )
            print(_row(name, row))
        results["backbones"] = figures
        clock = "atoms_per_cpu_s" if device.type == "cpu" else "atoms_per_s"
        ratio = figures["schnet"][clock] / figures["PyG SchNet (reference)"][clock]
        results["schnet_over_pyg"] = ratio
        print(f"ours/PyG SchNet throughput ({clock}): {ratio:.2f}x")
        del models, steps

    small = make_batches(frames, args.scalable_frames, cutoff, device)[: args.batches]
    atoms_small = np.mean([int(b.natoms.sum()) for b in small])
    print(
        f"\nscalable family, batches of {args.scalable_frames} frames ({atoms_small:.0f} atoms)\n{header}"
    )
    for name in args.sizes:
        potential = build(name, device, dtype)
        row = measure({name: ours_step(potential, dtype)}, small, device, args.warmup, args.rounds)[
            name
        ]
        row["params"] = sum(p.numel() for p in potential.parameters())
        row["atoms_per_batch"] = atoms_small
        results["scalable"][name] = row
        print(_row(name, row))
        del potential
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
