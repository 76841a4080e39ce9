"""Time to accuracy: our scalable family against MACE (mace-torch) on the same real DFT frames, side by side.

Each pair (ours-xs against MACE 64 channels L = 0, ours-s against MACE 64 channels L = 1) trains both models AT THE
SAME TIME, each in its own process pinned to its own core (os.sched_setaffinity), one thread each, for the same
budget of training wall time; both start their first step together (each says READY after its set-up, the parent
then says GO to both), so the machine's other load falls on both arms alike. Every repeat swaps the cores and takes
the next seed, so the spread shows what the machine and the seed do.

Same for both arms: the real frames of ../shared/data/dft and their train/validation split (by structure id: crc32
% 10 == 0 is validation, at most --val-frames of it), the same batches (frames shuffled per seed, filled up to
--max-atoms, graphs from our collate_frames at the 5 A cutoff; MACE gets the identical edges), the same E/F/S loss
(foundation's Objective: MSE of energy per atom, force components and stress components, weights --weights), the
same energy normalisation (least-squares element references of the train split, scale = force RMS, shift = mean
residual energy per atom), gradient clipping at 10, float32, and validation on an exponential moving average of
the weights (foundation's EMA, decay --ema, by default our recipe's; 0 turns it off for both). Each model keeps its
own optimiser: ours that of our E/F/S pre-training recipe (configs/pretrain/efs_derivative.yaml: AdamW lr 1e-3,
linear warm-up over 50 steps, then constant), MACE mace_run_train's (Adam, amsgrad, lr 0.01, weight decay 5e-7 on
the interaction weights, constant: its plateau scheduler waits 50 epochs). Both get one forward and backward before
the clock starts (no optimiser step), so one-time costs of a first call stay out of it. The clock counts training
steps only: validation (energy per atom, force and stress MAE) runs every --budget / --evals seconds of training
and is not counted. MACE's process alone runs with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (its e3nn import needs it
with torch 2.13).

Reported per pair and repeat: the time ours needs to reach MACE's final (best) validation force MAE against the
time MACE needs for it, and the reverse, from best-so-far curves of the trained points (the untrained start left
out; time = the first validation at or below the target, so its resolution is budget / evals); beside them the
trivial baselines of the validation frames (zero forces, reference-only energies, zero stress). A final force MAE
less than 2% below the zero-force MAE means that model learned no forces, and a ratio to it says little
(`mace_learned_forces`); so each arm's time to a common target, 5% below the zero-force MAE, is reported too.
Writes a JSON (--out) and a figure (--figure).

    OMP_NUM_THREADS=1 python bench/time_to_accuracy.py   # 2 pairs x 2 repeats x 300 s: ~28 min on 2 idle cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict
from pathlib import Path

import ase.io
import numpy as np
import torch
from torch import Tensor

from foundation.data.ase_convert import frame_from_atoms
from foundation.data.batch import AtomsBatch, collate_frames
from foundation.models import build_potential
from foundation.train.config import ObjectiveConfig, ScheduleConfig, load_train_config
from foundation.train.ema import EMA
from foundation.train.objectives import Objective
from foundation.train.schedule import LRSchedule

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dft"
RECIPE = (
    REPO / "configs" / "pretrain" / "efs_derivative.yaml"
)  # ours: its optimiser, warm-up and EMA decay
CUTOFF = 5.0
GRAD_CLIP = 10.0
ID_KEYS = ("mptrj_traj_id", "alexandria_id", "internal_id")
# name -> (family, size): ours by config name; MACE by (channels, L of the hidden features)
MODELS = {
    "ours-xs": ("ours", "scalable-xs"),
    "ours-s": ("ours", "scalable-s"),
    "mace-64-L0": ("mace", (64, 0)),
    "mace-64-L1": ("mace", (64, 1)),
    "mace-128-L0": ("mace", (128, 0)),
    "mace-128-L1": ("mace", (128, 1)),
}
LEARNED_MARGIN = (
    0.02  # a final force MAE within 2% of the zero-force MAE counts as no force learned
)
COMMON_TARGET = 0.95  # a target independent of either arm's noise: 5% below the zero-force MAE
METRICS = (
    ("energy_per_atom_mae", "meV/atom", 1e3),
    ("forces_mae", "eV/A", 1.0),
    ("stress_mae", "meV/A^3", 1e3),
)


def load_split(data: Path, val_frames: int) -> tuple[list, list]:
    """(train, validation) Frames; validation = structures with crc32(id) % 10 == 0, at most val_frames of them
    (the lowest crc32 of their frame ids: a mix of every source)."""
    train, val = [], []
    for path in sorted(data.glob("*.xyz")):
        for k, atoms in enumerate(ase.io.iread(path, index=":")):
            sid = next(
                (str(atoms.info[key]) for key in ID_KEYS if key in atoms.info), f"{path.stem}:{k}"
            )
            frame = frame_from_atoms(
                atoms, frame_id=f"{path.stem}:{k}", structure_id=sid, source=path.name
            )
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
    return {
        "element_references": dict(zip(elements, refs.tolist())),
        "scale": float(np.sqrt(np.mean(forces**2))),
        "shift": float(np.mean((energy - counts @ refs) / natoms)),
    }


def baselines(val: list, norm: dict) -> dict:
    """Validation MAE of the trivial predictors: zero forces, zero stress, and the energy an untrained head whose
    per-atom output is zero gives (element references + shift per atom)."""
    refs = norm["element_references"]
    energy = [
        abs((f.energy - sum(refs.get(int(z), 0.0) for z in f.numbers)) / f.natoms - norm["shift"])
        for f in val
    ]
    return {
        "energy_per_atom_mae": float(np.mean(energy)),
        "forces_mae": float(np.mean(np.concatenate([np.abs(f.forces).reshape(-1) for f in val]))),
        "stress_mae": float(
            np.mean(
                np.concatenate([np.abs(f.stress).reshape(-1) for f in val if f.stress is not None])
            )
        ),
    }


def make_batches(frames: list, max_atoms: int, seed: int | None) -> list[AtomsBatch]:
    order = (
        np.random.default_rng(seed).permutation(len(frames))
        if seed is not None
        else range(len(frames))
    )
    batches, chosen, total = [], [], 0
    for k in order:
        if chosen and total + frames[k].natoms > max_atoms:
            batches.append(collate_frames(chosen, CUTOFF))
            chosen, total = [], 0
        chosen.append(frames[k])
        total += frames[k].natoms
    return batches + [collate_frames(chosen, CUTOFF)]


class Ours:
    """foundation's Potential (forces and stress by autograd inside forward) with the optimiser and learning-rate
    warm-up of our E/F/S pre-training recipe (RECIPE: AdamW); after the warm-up the rate stays constant (the
    recipe's cosine needs a step count, which a wall-clock budget does not fix)."""

    def __init__(self, name: str, norm: dict):
        self.model = build_potential(name)
        self.model.set_normalization(**norm)
        recipe = load_train_config(RECIPE)
        opt = recipe.optimizer
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=opt.lr,
            betas=opt.betas,
            eps=opt.eps,
            weight_decay=opt.weight_decay,
        )
        self.schedule = LRSchedule(
            ScheduleConfig(kind="constant", warmup_steps=recipe.schedule.warmup_steps),
            opt,
            max_steps=0,
        )
        self.step = 0

    def set_lr(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr(self.step)
        self.step += 1

    def predict(self, batch: AtomsBatch, training: bool) -> dict:
        self.model.train(training)
        return self.model(batch, compute=("energy", "forces", "stress"))


class Mace:
    """mace-torch's ScaleShiftMACE (RealAgnosticResidualInteractionBlock, 2 interactions, correlation 3, l_max 3,
    8 Bessel functions, radial MLP [64, 64, 64], readout MLP 16x0e: mace_run_train's defaults) on our edges, with
    mace_run_train's optimiser (its ReduceLROnPlateau waits 50 epochs: the rate stays constant in any budget here)."""

    def __init__(
        self, size: tuple[int, int], norm: dict, elements: list[int], avg_neighbours: float
    ):
        from e3nn import o3
        from mace.modules import RealAgnosticResidualInteractionBlock, ScaleShiftMACE

        channels, lmax = size
        hidden = " + ".join(
            f"{channels}x{order}{'e' if order % 2 == 0 else 'o'}" for order in range(lmax + 1)
        )
        refs = norm["element_references"]
        self.elements = elements
        self.model = ScaleShiftMACE(
            r_max=CUTOFF,
            num_bessel=8,
            num_polynomial_cutoff=5,
            max_ell=3,
            interaction_cls=RealAgnosticResidualInteractionBlock,
            interaction_cls_first=RealAgnosticResidualInteractionBlock,
            num_interactions=2,
            num_elements=len(elements),
            hidden_irreps=o3.Irreps(hidden),
            MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=np.array([refs.get(z, 0.0) for z in elements]),
            avg_num_neighbors=avg_neighbours,
            atomic_numbers=elements,
            correlation=3,
            gate=torch.nn.functional.silu,
            radial_MLP=[64, 64, 64],
            atomic_inter_scale=norm["scale"],
            atomic_inter_shift=norm["shift"],
        )
        decay = [
            p for n, p in self.model.named_parameters() if "weight" in n and "interactions" in n
        ]
        rest = [
            p
            for n, p in self.model.named_parameters()
            if not ("weight" in n and "interactions" in n)
        ]
        self.optimizer = torch.optim.Adam(
            [{"params": decay, "weight_decay": 5e-7}, {"params": rest}], lr=0.01, amsgrad=True
        )
        self.cache: dict[int, dict] = {}

    def set_lr(self) -> None:
        """Constant."""

    def inputs(self, batch: AtomsBatch) -> dict:
        if id(batch) not in self.cache:
            device = batch.numbers.device
            index = torch.tensor(
                [self.elements.index(z) if z in self.elements else -1 for z in range(119)],
                device=device,
            )
            one_hot = torch.nn.functional.one_hot(index[batch.numbers], len(self.elements)).float()
            cell = batch.cell.float()
            shifts = torch.bmm(
                batch.shifts.unsqueeze(1), cell[batch.batch[batch.edge_index[0]]]
            ).squeeze(1)
            self.cache[id(batch)] = {
                "positions": batch.positions.float(),
                "cell": cell,
                "node_attrs": one_hot,
                "batch": batch.batch,
                "ptr": torch.cat([batch.natoms.new_zeros(1), batch.natoms.cumsum(0)]),
                "edge_index": batch.edge_index,
                "shifts": shifts,
                "unit_shifts": batch.shifts.float(),
                "head": torch.zeros(batch.num_graphs, dtype=torch.long, device=device),
            }
        return dict(self.cache[id(batch)])  # MACE overwrites positions/shifts in the dict it gets

    def predict(self, batch: AtomsBatch, training: bool) -> dict:
        self.model.train(training)
        out = self.model(
            self.inputs(batch), training=training, compute_force=True, compute_stress=True
        )
        return {"energy": out["energy"], "forces": out["forces"], "stress": out["stress"]}


def train_step(runner, batch: AtomsBatch, objective: Objective) -> Tensor:
    """One E/F/S step: forward (forces and stress by autograd), loss, backward, clipping, optimiser step."""
    runner.set_lr()
    runner.optimizer.zero_grad(set_to_none=True)
    pred = runner.predict(batch, training=True)
    loss, _ = objective.loss(objective.errors(pred, batch), objective.counts(batch, None))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(runner.model.parameters(), GRAD_CLIP)
    runner.optimizer.step()
    return loss.detach()


def warm_up(runner, batch: AtomsBatch, objective: Objective) -> None:
    """One forward and backward without an optimiser step (weights unchanged): one-time costs of the first call
    (allocations, MACE's lazily built kernels) stay out of the training clock of both models."""
    pred = runner.predict(batch, training=True)
    objective.loss(objective.errors(pred, batch), objective.counts(batch, None))[0].backward()
    runner.optimizer.zero_grad(set_to_none=True)


def validate(runner, batches: list[AtomsBatch], ema: EMA | None) -> dict:
    """Validation MAE (energy per atom, force and stress components) with the EMA weights when there is one."""
    live = None
    if ema is not None:
        live = {k: v.clone() for k, v in runner.model.state_dict().items()}
        runner.model.load_state_dict(ema.state_dict(runner.model))
    err = {"energy_per_atom_mae": [], "forces_mae": [], "stress_mae": []}
    for batch in batches:
        out = runner.predict(batch, training=False)
        err["energy_per_atom_mae"].append(
            ((out["energy"].detach().double() - batch.energy) / batch.natoms).abs()
        )
        err["forces_mae"].append((out["forces"].detach().double() - batch.forces).abs().reshape(-1))
        err["stress_mae"].append((out["stress"].detach().double() - batch.stress).abs().reshape(-1))
    if live is not None:
        runner.model.load_state_dict(live)
    return {k: float(torch.cat(v).mean()) for k, v in err.items()}


def worker(args: argparse.Namespace) -> None:
    """Train one model for --budget seconds of training wall time, starting when the parent says GO on stdin;
    print its curve as the last line."""
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
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
    objective = Objective(
        ObjectiveConfig(
            energy_weight=args.weights[0],
            forces_weight=args.weights[1],
            stress_weight=args.weights[2],
        )
    )
    ema = EMA(runner.model, args.ema) if args.ema > 0 else None
    params = sum(p.numel() for p in runner.model.parameters())
    start = validate(runner, val_batches, None)
    warm_up(runner, batches[0], objective)
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "GO":
        raise SystemExit(f"{args.worker}: the parent did not say GO")
    wall = cpu = 0.0
    steps = atoms = 0
    curve = [{"wall_s": 0.0, "cpu_s": 0.0, "steps": 0, "atoms": 0, **start}]
    interval = args.budget / args.evals
    next_eval, epoch = interval, 0
    while wall < args.budget:
        order = np.random.default_rng(args.seed * 1000 + epoch).permutation(len(batches))
        epoch += 1
        for k in order:
            batch = batches[k]
            t, c = time.perf_counter(), time.process_time()
            loss = train_step(runner, batch, objective)
            if ema is not None:
                ema.update(runner.model)
            wall += time.perf_counter() - t
            cpu += time.process_time() - c
            steps, atoms = steps + 1, atoms + len(batch.numbers)
            if not math.isfinite(float(loss)):
                raise SystemExit(f"{args.worker}: loss {float(loss)} at step {steps}")
            if wall >= next_eval or wall >= args.budget:
                t = time.perf_counter()
                point = validate(runner, val_batches, ema)
                curve.append(
                    {
                        "wall_s": wall,
                        "cpu_s": cpu,
                        "steps": steps,
                        "atoms": atoms,
                        **point,
                        "validation_s": time.perf_counter() - t,
                    }
                )
                next_eval += interval
            if wall >= args.budget:
                break
    print(
        "RESULT "
        + json.dumps(
            {
                "model": args.worker,
                "seed": args.seed,
                "core": args.core,
                "parameters": params,
                "train_frames": len(train),
                "val_frames": len(val),
                "batches": len(batches),
                "baselines": baselines(val, norm),
                "curve": curve,
            }
        ),
        flush=True,
    )


def launch(
    name: str, seed: int, core: int | None, args: argparse.Namespace, log
) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    if MODELS[name][0] == "mace":
        env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--seed",
        str(seed),
        "--budget",
        str(args.budget),
        "--evals",
        str(args.evals),
        "--threads",
        str(args.threads),
        "--max-atoms",
        str(args.max_atoms),
        "--val-frames",
        str(args.val_frames),
        "--data",
        str(args.data),
        "--ema",
        str(args.ema),
        "--weights",
        *map(str, args.weights),
    ] + ([] if core is None else ["--core", str(core)])
    return subprocess.Popen(
        cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
    )


def run_pair(
    names: tuple[str, str],
    seed: int,
    cores: tuple[int | None, int | None],
    args: argparse.Namespace,
) -> list[dict]:
    """Both models of a pair at once, each on its own core; both start training when both are ready."""
    with tempfile.TemporaryFile("w+") as log_a, tempfile.TemporaryFile("w+") as log_b:
        procs = [launch(n, seed, c, args, log) for n, c, log in zip(names, cores, (log_a, log_b))]
        for proc in procs:
            line = proc.stdout.readline()
            while line and line.strip() != "READY":
                line = proc.stdout.readline()
        if any(
            proc.poll() is not None for proc in procs
        ):  # one died in its set-up: the other must not train alone
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
        else:
            for proc in procs:
                proc.stdin.write("GO\n")
                proc.stdin.flush()
        outputs = [proc.communicate()[0] for proc in procs]
        lines = [
            [line for line in out.splitlines() if line.startswith("RESULT ")] for out in outputs
        ]
        failed = [k for k, proc in enumerate(procs) if proc.returncode or not lines[k]]
        if failed:  # name the arm that failed, not the one killed because of it
            k = next((k for k in failed if procs[k].returncode != -9), failed[0])
            log = (log_a, log_b)[k]
            log.seek(0)
            raise SystemExit(f"{names[k]} (seed {seed}) failed:\n{log.read()[-3000:]}")
        results = [json.loads(found[-1][len("RESULT ") :]) for found in lines]
    for result in results:
        print(
            f"  {result['model']} seed {seed} core {result['core']}: {result['curve'][-1]['steps']} steps, "
            f"force MAE {result['curve'][0]['forces_mae']:.3f} -> {result['curve'][-1]['forces_mae']:.3f} eV/A",
            flush=True,
        )
        print(
            "RUN " + json.dumps(result), flush=True
        )  # every run kept in the log, should a later one fail
    return results


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


def compare(ours: dict, mace: dict) -> dict:
    """Times to each other's final (best) validation force MAE, their ratios, and whether each learned forces
    at all (final at least LEARNED_MARGIN below the zero-force baseline)."""
    zero = ours["baselines"]["forces_mae"]
    mace_final, ours_final = best_so_far(mace["curve"])[-1][1], best_so_far(ours["curve"])[-1][1]
    t_ours, t_mace = time_to(ours["curve"], mace_final), time_to(mace["curve"], mace_final)
    r_ours, r_mace = time_to(ours["curve"], ours_final), time_to(mace["curve"], ours_final)
    return {
        "seed": ours["seed"],
        "cores": {"ours": ours["core"], "mace": mace["core"]},
        "steps": {"ours": ours["curve"][-1]["steps"], "mace": mace["curve"][-1]["steps"]},
        "zero_force_mae": zero,
        "mace_final_force_mae": mace_final,
        "ours_final_force_mae": ours_final,
        "mace_learned_forces": mace_final < (1 - LEARNED_MARGIN) * zero,
        "ours_learned_forces": ours_final < (1 - LEARNED_MARGIN) * zero,
        "cpu_share": {
            "ours": ours["curve"][-1]["cpu_s"] / ours["curve"][-1]["wall_s"],
            "mace": mace["curve"][-1]["cpu_s"] / mace["curve"][-1]["wall_s"],
        },
        "ours_s_to_mace_final": t_ours,
        "mace_s_to_mace_final": t_mace,
        "ratio_ours_over_mace": None if t_ours is None else t_ours / t_mace,
        "mace_s_to_ours_final": r_mace,
        "ours_s_to_ours_final": r_ours,
        "reverse_ratio_mace_over_ours": None if r_mace is None else r_mace / r_ours,
        "s_to_5pct_below_zero_force": {
            "ours": time_to(ours["curve"], COMMON_TARGET * zero),
            "mace": time_to(mace["curve"], COMMON_TARGET * zero),
        },
    }


def figure(results: list[dict], pairs: list[tuple[str, str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pairs), 3, figsize=(13, 3.6 * len(pairs)), squeeze=False)
    for row, pair in enumerate(pairs):
        runs = [r for r in results if tuple(r["pair"]) == pair]
        for res in runs:
            colour = "C0" if res["model"] == pair[0] else "C1"
            style = ("-", "--", ":", "-.")[res["seed"] % 4]
            t = [p["wall_s"] for p in res["curve"]]
            for col, (key, _unit, scale) in enumerate(METRICS):
                label = f"{res['model']} ({res['parameters'] / 1e6:.2f}M) seed {res['seed']} core {res['core']}"
                axes[row, col].plot(
                    t,
                    [p[key] * scale for p in res["curve"]],
                    color=colour,
                    linestyle=style,
                    alpha=0.8,
                    marker=".",
                    label=label,
                )
        for col, (key, unit, scale) in enumerate(METRICS):
            if runs:
                axes[row, col].axhline(
                    runs[0]["baselines"][key] * scale,
                    color="grey",
                    linewidth=1,
                    label="zero forces / stress, reference energies",
                )
            axes[row, col].set_ylabel(
                f"validation {key.split('_mae')[0].replace('_', ' ')} MAE ({unit})"
            )
            axes[row, col].set_xlabel("training wall time (s)")
        axes[row, 1].set_title(f"{pair[0]} vs {pair[1]} (side by side, one core each)", fontsize=9)
        axes[row, 0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def rounded(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds)


def pick_cores(requested: list[int] | None) -> tuple[int, int]:
    cores = sorted(os.sched_getaffinity(0)) if requested is None else requested
    if len(cores) < 2 or len(set(cores)) != len(cores):
        raise SystemExit(
            f"--cores: two different cores are needed to run a pair side by side, got {cores}"
        )
    return cores[0], cores[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--pairs",
        nargs="+",
        default=["ours-xs:mace-64-L0", "ours-s:mace-64-L1"],
        help=f"ours:mace pairs of {sorted(MODELS)}",
    )
    parser.add_argument("--budget", type=float, default=300.0, help="training wall seconds per run")
    parser.add_argument(
        "--evals", type=int, default=12, help="validations per run (plus one at the start)"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs per pair: seed k, cores swapped on odd k"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--cores",
        type=int,
        nargs=2,
        default=None,
        help="the two cores a pair runs on (default: the first two this process may use)",
    )
    parser.add_argument("--max-atoms", type=int, default=128)
    parser.add_argument("--val-frames", type=int, default=100)
    parser.add_argument(
        "--weights", type=float, nargs=3, default=[1.0, 10.0, 100.0], help="energy forces stress"
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=load_train_config(RECIPE).engine.ema_decay,
        help="EMA decay of the validated weights, both models (0: the raw weights)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs" / "bench" / "time_to_accuracy.json"
    )
    parser.add_argument(
        "--figure", type=Path, default=REPO / "docs" / "figures" / "time_to_accuracy.png"
    )
    parser.add_argument("--worker", choices=sorted(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    pairs = [tuple(p.split(":")) for p in args.pairs]
    for pair in pairs:
        if (
            len(pair) != 2
            or MODELS.get(pair[0], ("",))[0] != "ours"
            or MODELS.get(pair[1], ("",))[0] != "mace"
        ):
            raise SystemExit(f"--pairs: {':'.join(pair)} is not ours-*:mace-* of {sorted(MODELS)}")
    cores = pick_cores(args.cores)
    started, load_before = time.time(), os.getloadavg()
    results, summary = [], {}
    for seed in range(args.repeats):
        placed = cores if seed % 2 == 0 else cores[::-1]
        for pair in pairs if seed % 2 == 0 else pairs[::-1]:
            print(
                f"{pair[0]} on core {placed[0]}, {pair[1]} on core {placed[1]}, seed {seed}",
                flush=True,
            )
            ours, mace = run_pair(pair, seed, placed, args)
            for res in (ours, mace):
                res["pair"] = list(pair)
            results += [ours, mace]
            summary.setdefault(
                ":".join(pair),
                {
                    "parameters": {pair[0]: ours["parameters"], pair[1]: mace["parameters"]},
                    "baselines": ours["baselines"],
                    "repeats": [],
                },
            )
            summary[":".join(pair)]["repeats"].append(compare(ours, mace))
    for name, entry in summary.items():
        ratios = [r["ratio_ours_over_mace"] for r in entry["repeats"]]
        entry["median_ratio_ours_over_mace"] = statistics.median(
            r if r is not None else math.inf for r in ratios
        )
        entry["range_ratio_ours_over_mace"] = [
            min(r if r is not None else math.inf for r in ratios),
            max(r if r is not None else math.inf for r in ratios),
        ]
        print(
            f"{name}: time ours / MACE to MACE's final force MAE per repeat "
            f"{[None if r is None else round(r, 2) for r in ratios]}; MACE learned forces (final 2% below the "
            f"zero-force {entry['baselines']['forces_mae']:.3f} eV/A): "
            f"{[r['mace_learned_forces'] for r in entry['repeats']]}; s to 5% below it (ours, MACE): "
            f"{[tuple(rounded(t) for t in r['s_to_5pct_below_zero_force'].values()) for r in entry['repeats']]}",
            flush=True,
        )
    out = {
        "command": " ".join(["python", "bench/time_to_accuracy.py", *sys.argv[1:]]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
        "wall_s_total": time.time() - started,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "torch": torch.__version__,
        "threads": args.threads,
        "cores": list(cores),
        "budget_s": args.budget,
        "evals": args.evals,
        "max_atoms": args.max_atoms,
        "weights": args.weights,
        "ema_decay": args.ema,
        "optimizers": {
            "ours": asdict(load_train_config(RECIPE).optimizer)
            | {
                "kind": "AdamW",
                "warmup_steps": load_train_config(RECIPE).schedule.warmup_steps,
                "after_warmup": "constant",
                "recipe": str(RECIPE.relative_to(REPO)),
            },
            "mace": {"kind": "Adam", "amsgrad": True, "lr": 0.01, "weight_decay": 5e-7},
        },
        "summary": summary,
        "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    figure(results, pairs, args.figure)
    print(f"wrote {args.out} and {args.figure} ({out['wall_s_total']:.0f} s)")


if __name__ == "__main__":
    main()
