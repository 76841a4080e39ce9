"""Time to accuracy: our scalable family against MACE (mace-torch) on the same real DFT frames, same wall clock.

Every run trains one model in its own subprocess (one process, --threads torch threads) on the real frames of
../shared/data/dft: the same train/validation split (by structure id: crc32 % 10 == 0 is validation, at most
--val-frames of it), the same batches (frames shuffled once per seed, filled up to --max-atoms, graphs from our
collate_frames at the 5 A cutoff; MACE gets the identical edges), the same E/F/S loss (foundation's Objective: MSE
of energy per atom, force components and stress components, weights --weights), the same energy normalisation
(least-squares element references of the train split, scale = force RMS, shift = mean residual energy per atom),
gradient clipping at 10, float32. Each model uses its own default optimiser: ours AdamW lr 1e-3 (OptimizerConfig),
MACE Adam (amsgrad) lr 0.01, weight decay 5e-7 (mace_run_train's defaults). The clock counts training steps only:
validation (energy per atom, force and stress MAE on the validation frames) runs every --budget / --evals seconds
of training and is not counted. Runs of a pair are interleaved and repeated (--repeats) so the machine's noise
shows in the spread. MACE runs with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (its e3nn import needs it with torch 2.13),
set in its subprocess only.

For each pair and repeat: the time ours needs to reach MACE's final (best) validation force MAE, against the time
MACE needs for it, and the reverse; from best-so-far curves of the trained points (the untrained start left out). Writes a JSON (--out) and a figure (--figure).

    OMP_NUM_THREADS=1 python bench/time_to_accuracy.py   # --pairs ours-xs:mace-64-L0 ours-s:mace-64-L0 --budget 200
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

import ase.io
import numpy as np
import torch
from torch import Tensor

from foundation.data.ase_convert import frame_from_atoms
from foundation.data.batch import AtomsBatch, collate_frames
from foundation.models import build_potential
from foundation.train.config import ObjectiveConfig
from foundation.train.objectives import Objective

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dft"
CUTOFF = 5.0
OUTPUTS = ("energy", "forces", "stress")
ID_KEYS = ("mptrj_traj_id", "alexandria_id", "internal_id")
# name -> (family, size): ours by config name; MACE by (channels, L of the hidden features)
MODELS = {"ours-xs": ("ours", "scalable-xs"), "ours-s": ("ours", "scalable-s"),
          "mace-64-L0": ("mace", (64, 0)), "mace-64-L1": ("mace", (64, 1)),
          "mace-128-L0": ("mace", (128, 0)), "mace-128-L1": ("mace", (128, 1))}


def load_split(data: Path, val_frames: int) -> tuple[list, list]:
    """(train, validation) Frames; validation = structures with crc32(id) % 10 == 0, at most val_frames of them
    (the lowest crc32 of their frame ids: a mix of every source)."""
    train, val = [], []
    for path in sorted(data.glob("*.xyz")):
        for k, atoms in enumerate(ase.io.iread(path, index=":")):
            sid = next((str(atoms.info[key]) for key in ID_KEYS if key in atoms.info), f"{path.stem}:{k}")
            frame = frame_from_atoms(atoms, frame_id=f"{path.stem}:{k}", structure_id=sid, source=path.name)
            (val if zlib.crc32(sid.encode()) % 10 == 0 else train).append(frame)
    if not train or not val:
        raise SystemExit(f"no frames under {data}")
    return train, sorted(val, key=lambda f: zlib.crc32(f.frame_id.encode()))[:val_frames]


def normalization(train: list) -> dict:
    """Element references (least squares of total energy on composition), scale = force RMS, shift = mean
    per-atom residual: what foundation's manifest statistics give, computed here for both models."""
    elements = sorted({int(z) for f in train for z in f.numbers})
    column = {z: k for k, z in enumerate(elements)}
    counts = np.zeros((len(train), len(elements)))
    for row, f in enumerate(train):
        for z in f.numbers:
            counts[row, column[int(z)]] += 1
    energy = np.array([f.energy for f in train])
    refs = np.linalg.lstsq(counts, energy, rcond=None)[0]
    natoms = counts.sum(1)
    forces = np.concatenate([f.forces.reshape(-1) for f in train])
    return {"element_references": dict(zip(elements, refs.tolist())),
            "scale": float(np.sqrt(np.mean(forces ** 2))),
            "shift": float(np.mean((energy - counts @ refs) / natoms))}


def make_batches(frames: list, max_atoms: int, seed: int | None) -> list[AtomsBatch]:
    order = np.random.default_rng(seed).permutation(len(frames)) if seed is not None else range(len(frames))
    batches, chosen, total = [], [], 0
    for k in order:
        if chosen and total + frames[k].natoms > max_atoms:
            batches.append(collate_frames(chosen, CUTOFF))
            chosen, total = [], 0
        chosen.append(frames[k])
        total += frames[k].natoms
    return batches + [collate_frames(chosen, CUTOFF)]


class Ours:
    """foundation's Potential: forces and stress by autograd inside forward."""

    def __init__(self, name: str, norm: dict):
        self.model = build_potential(name)
        self.model.set_normalization(**norm)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)

    def predict(self, batch: AtomsBatch, training: bool) -> dict:
        self.model.train(training)
        return self.model(batch, compute=OUTPUTS)


class Mace:
    """mace-torch's ScaleShiftMACE (RealAgnosticResidualInteractionBlock, 2 interactions, correlation 3, l_max 3,
    8 Bessel functions, radial MLP [64, 64, 64], readout MLP 16x0e: mace_run_train's defaults) on our edges."""

    def __init__(self, size: tuple[int, int], norm: dict, elements: list[int], avg_neighbours: float):
        from e3nn import o3
        from mace.modules import RealAgnosticResidualInteractionBlock, ScaleShiftMACE

        channels, lmax = size
        hidden = " + ".join(f"{channels}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1))
        refs = norm["element_references"]
        self.elements = elements
        self.model = ScaleShiftMACE(
            r_max=CUTOFF, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
            interaction_cls=RealAgnosticResidualInteractionBlock,
            interaction_cls_first=RealAgnosticResidualInteractionBlock, num_interactions=2,
            num_elements=len(elements), hidden_irreps=o3.Irreps(hidden), MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=np.array([refs.get(z, 0.0) for z in elements]), avg_num_neighbors=avg_neighbours,
            atomic_numbers=elements, correlation=3, gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64],
            atomic_inter_scale=norm["scale"], atomic_inter_shift=norm["shift"])
        decay = [p for n, p in self.model.named_parameters() if "weight" in n and "interactions" in n]
        rest = [p for n, p in self.model.named_parameters() if not ("weight" in n and "interactions" in n)]
        self.optimizer = torch.optim.Adam([{"params": decay, "weight_decay": 5e-7}, {"params": rest}], lr=0.01,
                                          amsgrad=True)
        self.cache: dict[int, dict] = {}

    def inputs(self, batch: AtomsBatch) -> dict:
        if id(batch) not in self.cache:
            device = batch.numbers.device
            index = torch.tensor([self.elements.index(z) if z in self.elements else -1 for z in range(119)],
                                 device=device)
            one_hot = torch.nn.functional.one_hot(index[batch.numbers], len(self.elements)).float()
            cell = batch.cell.float()
            shifts = torch.bmm(batch.shifts.unsqueeze(1), cell[batch.batch[batch.edge_index[0]]]).squeeze(1)
            self.cache[id(batch)] = {
                "positions": batch.positions.float(), "cell": cell, "node_attrs": one_hot, "batch": batch.batch,
                "ptr": torch.cat([batch.natoms.new_zeros(1), batch.natoms.cumsum(0)]), "edge_index": batch.edge_index,
                "shifts": shifts, "unit_shifts": batch.shifts.float(),
                "head": torch.zeros(batch.num_graphs, dtype=torch.long, device=device)}
        return dict(self.cache[id(batch)])  # MACE overwrites positions/shifts in the dict it gets

    def predict(self, batch: AtomsBatch, training: bool) -> dict:
        self.model.train(training)
        out = self.model(self.inputs(batch), training=training, compute_force=True, compute_stress=True)
        return {"energy": out["energy"], "forces": out["forces"], "stress": out["stress"]}


def train_step(runner, batch: AtomsBatch, objective: Objective) -> Tensor:
    """One E/F/S step: forward (forces and stress by autograd), loss, backward, clipping at 10, optimiser step."""
    runner.optimizer.zero_grad(set_to_none=True)
    pred = runner.predict(batch, training=True)
    loss, _ = objective.loss(objective.errors(pred, batch), objective.counts(batch, None))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(runner.model.parameters(), 10.0)
    runner.optimizer.step()
    return loss.detach()


def validate(runner, batches: list[AtomsBatch]) -> dict:
    err = {"energy_per_atom": [], "forces": [], "stress": []}
    for batch in batches:
        out = runner.predict(batch, training=False)
        err["energy_per_atom"].append(((out["energy"].detach().double() - batch.energy) / batch.natoms).abs())
        err["forces"].append((out["forces"].detach().double() - batch.forces).abs().reshape(-1))
        err["stress"].append((out["stress"].detach().double() - batch.stress).abs().reshape(-1))
    return {f"{k}_mae": float(torch.cat(v).mean()) for k, v in err.items()}


def worker(args: argparse.Namespace) -> None:
    """Train one model for --budget seconds of training wall time; print its curve as the last line."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train, val = load_split(args.data, args.val_frames)
    norm = normalization(train)
    batches = make_batches(train, args.max_atoms, args.seed)
    val_batches = make_batches(val, args.max_atoms, None)
    family, size = MODELS[args.worker]
    if family == "ours":
        runner = Ours(size, norm)
    else:
        avg = sum(b.edge_index.shape[1] for b in batches) / sum(len(b.numbers) for b in batches)
        runner = Mace(size, norm, sorted(norm["element_references"]), avg)
    objective = Objective(ObjectiveConfig(energy_weight=args.weights[0], forces_weight=args.weights[1],
                                          stress_weight=args.weights[2]))
    params = sum(p.numel() for p in runner.model.parameters())
    wall = cpu = 0.0
    steps = atoms = 0
    curve = [{"wall_s": 0.0, "cpu_s": 0.0, "steps": 0, "atoms": 0, **validate(runner, val_batches)}]
    interval = args.budget / args.evals
    next_eval, epoch = interval, 0
    while wall < args.budget:
        order = np.random.default_rng(args.seed * 1000 + epoch).permutation(len(batches))
        epoch += 1
        for k in order:
            batch = batches[k]
            t, c = time.perf_counter(), time.process_time()
            loss = train_step(runner, batch, objective)
            wall += time.perf_counter() - t
            cpu += time.process_time() - c
            steps, atoms = steps + 1, atoms + len(batch.numbers)
            if not math.isfinite(float(loss)):
                raise SystemExit(f"{args.worker}: loss {float(loss)} at step {steps}")
            if wall >= next_eval or wall >= args.budget:
                curve.append({"wall_s": wall, "cpu_s": cpu, "steps": steps, "atoms": atoms,
                              **validate(runner, val_batches)})
                next_eval += interval
            if wall >= args.budget:
                break
    print("RESULT " + json.dumps({"model": args.worker, "seed": args.seed, "parameters": params,
                                  "train_frames": len(train), "val_frames": len(val), "batches": len(batches),
                                  "curve": curve}), flush=True)


def run_one(name: str, seed: int, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    if MODELS[name][0] == "mace":
        env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    cmd = [sys.executable, __file__, "--worker", name, "--seed", str(seed), "--budget", str(args.budget),
           "--evals", str(args.evals), "--threads", str(args.threads), "--max-atoms", str(args.max_atoms),
           "--val-frames", str(args.val_frames), "--data", str(args.data), "--weights", *map(str, args.weights)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{name} (seed {seed}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"  {name} seed {seed}: {result['curve'][-1]['steps']} steps, force MAE "
          f"{result['curve'][0]['forces_mae']:.3f} -> {result['curve'][-1]['forces_mae']:.3f} eV/A", flush=True)
    print("RUN " + json.dumps(result), flush=True)  # every run kept in the log, should a later one fail
    return result


def best_so_far(curve: list[dict], key: str = "forces_mae") -> list[tuple[float, float]]:
    """(training time, best validation MAE so far) of the trained points (the untrained start is left out)."""
    best, out = float("inf"), []
    for point in curve[1:]:
        best = min(best, point[key])
        out.append((point["wall_s"], best))
    return out


def time_to(curve: list[dict], target: float) -> float | None:
    """First training time (s) at which the best-so-far force MAE is <= target; None if never."""
    return next((t for t, best in best_so_far(curve) if best <= target), None)


def compare(ours: dict, mace: dict, budget: float) -> dict:
    mace_final, ours_final = best_so_far(mace["curve"])[-1][1], best_so_far(ours["curve"])[-1][1]
    t_ours, t_mace = time_to(ours["curve"], mace_final), time_to(mace["curve"], mace_final)
    r_ours, r_mace = time_to(ours["curve"], ours_final), time_to(mace["curve"], ours_final)
    return {"seed": ours["seed"], "mace_final_force_mae": mace_final, "ours_final_force_mae": ours_final,
            "ours_s_to_mace_final": t_ours, "mace_s_to_mace_final": t_mace,
            "ratio_ours_over_mace": None if t_ours is None else t_ours / t_mace,
            "mace_s_to_ours_final": r_mace, "ours_s_to_ours_final": r_ours,
            "reverse_ratio_mace_over_ours": None if r_mace is None else r_mace / r_ours,
            "budget_s": budget}


def figure(results: list[dict], pairs: list[tuple[str, str]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pairs), 3, figsize=(13, 3.6 * len(pairs)), squeeze=False)
    colours = {}
    for row, pair in enumerate(pairs):
        for res in results:
            if res["model"] not in pair:
                continue
            colour = colours.setdefault(res["model"], f"C{len(colours)}")
            t = [p["wall_s"] for p in res["curve"]]
            for col, (key, unit, scale) in enumerate((("energy_per_atom_mae", "meV/atom", 1e3),
                                                      ("forces_mae", "eV/A", 1.0),
                                                      ("stress_mae", "meV/A^3", 1e3))):
                label = f"{res['model']} ({res['parameters'] / 1e3:.0f}k)" if res["seed"] == 0 else None
                axes[row, col].plot(t, [p[key] * scale for p in res["curve"]], color=colour, alpha=0.8,
                                    marker=".", label=label)
                axes[row, col].set_ylabel(f"validation {key.split('_mae')[0].replace('_', ' ')} MAE ({unit})")
                axes[row, col].set_xlabel("training wall time (s)")
                axes[row, col].set_yscale("log")
        axes[row, 0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pairs", nargs="+", default=["ours-xs:mace-64-L0", "ours-s:mace-64-L0"],
                        help=f"ours:mace pairs of {sorted(MODELS)}")
    parser.add_argument("--budget", type=float, default=200.0, help="training wall seconds per run")
    parser.add_argument("--evals", type=int, default=8, help="validations per run (plus one at the start)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-atoms", type=int, default=256)
    parser.add_argument("--val-frames", type=int, default=100)
    parser.add_argument("--weights", type=float, nargs=3, default=[1.0, 10.0, 100.0], help="energy forces stress")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench" / "time_to_accuracy.json")
    parser.add_argument("--figure", type=Path, default=REPO / "docs" / "figures" / "time_to_accuracy.png")
    parser.add_argument("--worker", choices=sorted(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    pairs = [tuple(p.split(":")) for p in args.pairs]
    for pair in pairs:
        if len(pair) != 2 or MODELS.get(pair[0], ("",))[0] != "ours" or MODELS.get(pair[1], ("",))[0] != "mace":
            raise SystemExit(f"--pairs: {':'.join(pair)} is not ours-*:mace-* of {sorted(MODELS)}")
    started, load_before = time.time(), os.getloadavg()
    ours = list(dict.fromkeys(p[0] for p in pairs))
    mace = list(dict.fromkeys(p[1] for p in pairs))
    interleaved = [name for k in range(max(len(ours), len(mace))) for name in (ours[k:k + 1] + mace[k:k + 1])]
    results = []  # each model runs once per repeat (a run serves every pair it is in); odd repeats reverse the order
    for seed in range(args.repeats):
        for name in interleaved if seed % 2 == 0 else interleaved[::-1]:
            results.append(run_one(name, seed, args))
    by = {(r["model"], r["seed"]): r for r in results}
    summary = {}
    for a, b in pairs:
        rows = [compare(by[a, s], by[b, s], args.budget) for s in range(args.repeats)]
        ratios = [r["ratio_ours_over_mace"] for r in rows]
        summary[f"{a}:{b}"] = {
            "parameters": {a: by[a, 0]["parameters"], b: by[b, 0]["parameters"]}, "repeats": rows,
            "median_ratio_ours_over_mace": statistics.median(r if r is not None else math.inf for r in ratios)}
        print(f"{a} vs {b}: time ours / MACE to MACE's final force MAE per repeat "
              f"{[None if r is None else round(r, 2) for r in ratios]}", flush=True)
    out = {"command": " ".join(["python", "bench/time_to_accuracy.py", *sys.argv[1:]]),
           "wall_s_total": time.time() - started, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "torch": torch.__version__, "threads": args.threads, "budget_s": args.budget, "max_atoms": args.max_atoms,
           "weights": args.weights, "summary": summary, "runs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    figure(results, pairs, args.figure)
    print(f"wrote {args.out} and {args.figure} ({out['wall_s_total']:.0f} s)")


if __name__ == "__main__":
    main()
