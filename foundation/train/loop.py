"""The training loop: gather a step's micro-batches, all-reduce their label counts, forward/backward each
through the DeepSpeed engine, step, EMA, log, validate, checkpoint; stop requests end it at a step boundary
with a checkpoint on every rank."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from foundation.config import to_dict
from foundation.errors import UserError
from foundation.train import checkpoint as ckpt
from foundation.train.baselines import baseline_check, baseline_prediction
from foundation.train.config import TrainRunConfig
from foundation.train.datasets import TrainItem
from foundation.train.device_feed import DeviceFeed
from foundation.train.distributed import DistInfo, all_reduce_sum, any_rank
from foundation.train.ema import EMA
from foundation.train.engine import grad_norm, module_grad_norm, set_lr
from foundation.train.loader import SplitLoader, model_dtype_batch
from foundation.train.objectives import TERMS, Objective
from foundation.train.run_layout import BEST, LAST
from foundation.train.run_log import RunLogger, memory_mb
from foundation.train.schedule import LRSchedule
from foundation.train.source_metrics import SourceErrors
from foundation.train.validation import EXCLUDED, FIT

STOP = threading.Event()  # set by runner.request_stop() and the SIGUSR2/SIGTERM handlers
MAX_FRAMES_NAMED = 20  # a non-finite loss names at most this many of its batch's frames


class NonFiniteLoss(UserError):
    """A training loss that is NaN or infinite: training stops before it reaches the weights."""


@dataclass
class LoopState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch of the next micro-batch
    position: int = 0  # micro-batches of this rank already consumed in `epoch`
    best_val: float | None = None
    best_step: int | None = None


class Trainer:
    def __init__(
        self,
        cfg: TrainRunConfig,
        dist: DistInfo,
        engine: Any,
        eval_model: torch.nn.Module,
        objective: Objective,
        train: SplitLoader,
        val: SplitLoader,
        ema: EMA,
        schedule: LRSchedule,
        logger: RunLogger,
        state: LoopState,
        meta: dict,
        feed: DeviceFeed,
        val_excluded: SplitLoader | None = None,
        fit_check: SplitLoader | None = None,
    ):
        self.cfg, self.dist, self.engine, self.eval_model = cfg, dist, engine, eval_model
        self.val_excluded = (
            val_excluded  # validation frames of sources left out of the validation loss
        )
        self.fit_check = fit_check  # training frames evaluated beside them (data.fit_check_frames)
        self.objective, self.train, self.val, self.ema, self.schedule = (
            objective,
            train,
            val,
            ema,
            schedule,
        )
        self.log, self.state, self.meta = logger, state, meta
        self.feed = feed  # batches to the device, graphs built there when the workers left them out
        self.run_dir = Path(cfg.run_dir)
        self.dtype = (
            engine.module.geometry_dtype
        )  # float32 geometry under a bf16 model (positions keep 1e-7 A, not 0.06 A)
        self.clean_out, self.noisy_out = objective.outputs(engine.module.outputs)
        self._iterator: Iterator[TrainItem] | None = None
        self.last_val: dict[str, float] = {}
        self._grad_norm: float | None = None
        self._checkpointed_step: int | None = (
            state.step or None
        )  # a resumed run starts at its checkpoint's step

    # ---- data -------------------------------------------------------------------------------------------
    def _next_item(self) -> TrainItem:
        """The next micro-batch from the run's one loader, which spans epochs (its workers start once)."""
        s = self.state
        new_epoch = s.position >= len(self.train.sampler.rank_batches(s.epoch))
        if new_epoch:
            s.epoch, s.position = s.epoch + 1, 0
        if self._iterator is None:
            self._iterator = self.feed.items(self.train.loader(s.epoch, s.position, onward=True))
            new_epoch = True  # (or resumed inside one)
        if new_epoch:
            self._log_mixture()
        item = next(self._iterator)
        if (item.epoch, item.position) != (s.epoch, s.position):
            raise RuntimeError(
                f"loader out of step: got micro-batch {item.position} of epoch {item.epoch}, "
                f"expected {s.position} of {s.epoch}"
            )
        s.position += 1
        return item

    def _log_mixture(self) -> None:
        """Frames each dataset of a mixture gives this epoch (metrics.jsonl kind "mixture", TensorBoard
        mixture/frames/LABEL)."""
        drawn = getattr(self.train.sampler, "drawn", None)
        if drawn is not None:
            counts = drawn(self.state.epoch)
            self.log.event(
                "mixture",
                self.state.step,
                {f"mixture/frames/{label}": float(n) for label, n in counts.items()},
            )

    def _move(self, batch):
        batch = self.feed.batch(batch)
        return None if batch is None else model_dtype_batch(batch, self.dist.device, self.dtype)

    # ---- one optimizer step -----------------------------------------------------------------------------
    def _step(self) -> dict[str, torch.Tensor | float]:
        gas, world = self.cfg.engine.grad_accum, self.dist.world_size
        started = time.perf_counter()
        items = [self._next_item() for _ in range(gas)]
        data_wait = time.perf_counter() - started
        counts = sum(self.objective.counts(i.clean, i.noisy) for i in items).to(self.dist.device)
        all_reduce_sum(counts)
        set_lr(self.engine, self.schedule.lr(self.state.step))
        sums = torch.zeros(len(TERMS), 2, dtype=torch.float64, device=self.dist.device)
        for n, item in enumerate(items):
            clean, noisy = self._move(item.clean), self._move(item.noisy)
            errors = {}
            if clean is not None and self.clean_out:
                errors.update(
                    self.objective.errors(self.engine(clean, compute=self.clean_out), clean)
                )
            if noisy is not None:
                errors.update(
                    self.objective.errors(
                        self.engine(noisy, compute=self.noisy_out), noisy, noisy=True
                    )
                )
            loss, part = self.objective.loss(errors, counts)
            self._check_finite(loss, item)
            # DeepSpeed averages gradients over ranks and accumulation steps; the loss is already the global mean
            self.engine.backward(loss * (world * gas))
            if n == gas - 1:
                self._grad_norm = module_grad_norm(self.engine)
            self.engine.step()
            sums += part
        self.ema.update(self.engine.module)
        self.state.step += 1
        atoms = float(sum(i.num_atoms for i in items))
        return {
            "sums": sums,
            "counts": counts,
            "atoms": atoms,
            "data_wait": data_wait,
            "time": time.perf_counter() - started,
        }

    def _check_finite(self, loss: torch.Tensor, item: TrainItem) -> None:
        """Stop every rank before a non-finite loss reaches the weights (NonFiniteLoss naming step and frames)."""
        finite = bool(torch.isfinite(loss).all())
        if not any_rank(not finite, self.dist.device):
            return
        step = self.state.step + 1
        if finite:
            raise NonFiniteLoss(
                f"step {step}: the loss of another rank's micro-batch is not finite"
            )
        batch = item.clean if item.clean is not None else item.noisy
        ids = batch.frame_ids
        shown = ", ".join(repr(i) for i in ids[:MAX_FRAMES_NAMED])
        more = f" and {len(ids) - MAX_FRAMES_NAMED} more" if len(ids) > MAX_FRAMES_NAMED else ""
        raise NonFiniteLoss(
            f"step {step}: the loss is {float(loss.detach())} on the micro-batch of epoch {item.epoch}, "
            f"position {item.position}, frames {shown}{more}: check these frames' labels (foundation data stats) "
            "and the learning rate"
        )

    # ---- the loop ---------------------------------------------------------------------------------------
    def run(self) -> dict:
        cfg, s = self.cfg.train, self.state
        window = _Window(self.dist.device)
        stopped = early_stopped = False
        self.log.line(
            f"training from step {s.step} to {cfg.max_steps} on {self.dist.world_size} rank(s), "
            f"device {self.dist.device}, {self.cfg.engine.precision}, ZeRO {self.cfg.engine.zero_stage}"
        )
        sampler = self.train.sampler
        per_rank = len(sampler.rank_batches(s.epoch))
        self.log.line(
            f"epoch {s.epoch}: {per_rank} micro-batches of <= {sampler.max_atoms} atoms per rank; "
            f"{sampler.dropped} left out of this epoch to keep ranks and steps even (another "
            "shuffle draws them in later epochs)"
        )
        while s.step < cfg.max_steps:
            if self._patience_exhausted():
                early_stopped = True
                self.log.line(
                    f"early stop at step {s.step}: {cfg.early_stop_patience} validations without a new "
                    f"best validation loss (best {s.best_val:.6g} at step {s.best_step})"
                )
                break
            if any_rank(STOP.is_set(), self.dist.device):
                stopped = True
                self.log.line(f"stop requested: checkpointing at step {s.step}")
                break
            window.add(self._step())
            self.log.advance(1)
            if s.step % cfg.log_every == 0 or s.step == cfg.max_steps:
                self._log_train(window)
                window = _Window(self.dist.device)
            if s.step % cfg.val_every == 0 or s.step == cfg.max_steps:
                self._validate()
            if s.step % cfg.checkpoint_every == 0 or s.step == cfg.max_steps:
                self._checkpoint()
        if stopped or (early_stopped and self._checkpointed_step != s.step):
            self._checkpoint()
        elif s.step == cfg.max_steps and not self.last_val:  # resumed at the end: still report
            self._validate()
        if self.dist.is_main:
            ckpt.export_model(
                self.run_dir / LAST,
                self.ema.state_dict(self.engine.module),
                self._export_meta(self.last_val),
            )
        latest = ckpt.latest_checkpoint(self.run_dir)
        check = baseline_check(self.last_val)
        if check["flagged"]:
            self.log.line(check["message"], logging.WARNING)
        return {
            "step": s.step,
            "epoch": s.epoch,
            "stopped": stopped,
            "early_stopped": early_stopped,
            "val": self.last_val,
            "baseline_check": check,
            "best_val": s.best_val,
            "best_step": s.best_step,
            "run_dir": str(self.run_dir),
            "checkpoint": str(latest) if latest else None,
            "best": _existing(self.run_dir / BEST),
            "last": _existing(self.run_dir / LAST),
        }

    def _log_train(self, window: _Window) -> None:
        values = window.reduce(self.objective)
        values.update(
            lr=self.schedule.lr(self.state.step - 1),
            grad_norm=grad_norm(self.engine, self._grad_norm),
            epoch=float(self.state.epoch),
            **memory_mb(self.dist.device),
        )
        self.log.event("train", self.state.step, values)
        self.log.advance(0, values["loss"], values["atoms_per_s"])

    # ---- validation -------------------------------------------------------------------------------------
    def _patience_exhausted(self) -> bool:
        """Early stopping: `early_stop_patience` validations since the best one (a pure function of the state, so
        it holds across a resume)."""
        cfg, s = self.cfg.train, self.state
        if not cfg.early_stop_patience or s.best_step is None:
            return False
        return (s.step - s.best_step) // cfg.val_every >= cfg.early_stop_patience

    @torch.no_grad()
    def _validate(self) -> None:
        model = self.eval_model
        model.load_state_dict(self.ema.state_dict(self.engine.module))
        model.eval()
        by_source = SourceErrors(model.sources, self.dist.device)
        values = self._evaluate(self.val, by_source)
        if self.val_excluded is not None:
            values.update(
                {EXCLUDED + k: v for k, v in self._evaluate(self.val_excluded, by_source).items()}
            )
        values.update(by_source.values())
        if self.fit_check is not None:
            fit_by_source = SourceErrors(model.sources, self.dist.device, prefix=FIT)
            values.update(
                {FIT + k: v for k, v in self._evaluate(self.fit_check, fit_by_source).items()}
            )
            values.update(fit_by_source.values())
        self.last_val = values
        self.schedule.observe(values["loss"])
        self.log.event("val", self.state.step, values)
        s = self.state
        if s.best_val is None or values["loss"] < s.best_val:
            s.best_val, s.best_step = values["loss"], s.step
            if self.dist.is_main:
                ckpt.export_model(
                    self.run_dir / BEST,
                    self.ema.state_dict(self.engine.module),
                    self._export_meta(values),
                )

    def _evaluate(self, loader: SplitLoader, by_source: SourceErrors) -> dict[str, float]:
        """Loss, MAEs and the trivial baseline's MAEs of the eval model over one validation loader."""
        model = self.eval_model
        sums = torch.zeros(len(TERMS), 2, dtype=torch.float64, device=self.dist.device)
        base_sums = torch.zeros_like(sums)
        counts = torch.zeros(len(TERMS), dtype=torch.float64, device=self.dist.device)
        for item in loader.loader(0):
            clean, noisy = (self.feed.batch(b) for b in (item.clean, item.noisy))
            errors, base = {}, {}
            if clean is not None and self.clean_out:
                out = model(clean, compute=self.clean_out)
                trivial = baseline_prediction(model, clean, self.clean_out)
                by_source.add(out, trivial, clean)
                errors.update(self.objective.errors(out, clean))
                base.update(self.objective.errors(trivial, clean))
            if noisy is not None:
                errors.update(
                    self.objective.errors(model(noisy, compute=self.noisy_out), noisy, noisy=True)
                )
                base.update(
                    self.objective.errors(
                        baseline_prediction(model, noisy, self.noisy_out), noisy, noisy=True
                    )
                )
            counts += self.objective.counts(clean, noisy).to(self.dist.device)
            sums += self.objective.loss(errors, torch.ones(len(TERMS)))[1]
            base_sums += self.objective.loss(base, torch.ones(len(TERMS)))[1]
        all_reduce_sum(sums)
        all_reduce_sum(base_sums)
        all_reduce_sum(counts)
        return metrics(self.objective, sums, counts, base_sums)

    # ---- checkpoints ------------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        state = {
            **asdict(self.state),
            "world_size": self.dist.world_size,
            "schedule": self.schedule.state_dict(),
            "ema_updates": self.ema.updates,
            "last_val": self.last_val,
            "seed": self.cfg.train.seed,
            "normalization": self.meta["normalization"],
        }
        path = ckpt.save_checkpoint(
            self.run_dir,
            self.state.step,
            self.engine,
            state,
            self.ema.shadow,
            rank=self.dist.rank,
            keep=self.cfg.train.keep_checkpoints,
        )
        self._checkpointed_step = self.state.step
        self.log.line(f"checkpoint {path}")

    def _export_meta(self, val: dict) -> dict:
        return {
            "format": "foundation-potential",
            "model": self.meta["model"],
            "normalization": self.meta["normalization"],
            "step": self.state.step,
            "val": val,
            "objective": to_dict(self.cfg.objective),
            "dataset": [e.path for e in self.cfg.data.sources]
            if self.cfg.data.sources
            else self.cfg.data.path,
            **({"parent": self.meta["parent"]} if "parent" in self.meta else {}),
        }


def _existing(path: Path) -> str | None:
    return str(path) if path.exists() else None


def metrics(
    objective: Objective,
    sums: torch.Tensor,
    counts: torch.Tensor,
    baseline_sums: torch.Tensor | None = None,
) -> dict[str, float]:
    """Per-term loss and MAE from summed errors and counts, and the weighted total loss; with `baseline_sums`
    (the trivial predictor's summed errors, train/baselines.py) also `{term}_baseline_mae`."""
    values: dict[str, float] = {}
    total = 0.0
    scale = {
        "denoise": objective.config.noise_std
    }  # denoising errors are in units of noise_std: MAE in A
    for t, term in enumerate(TERMS):
        n = float(counts[t])
        if n == 0:
            continue
        loss = float(sums[t, 0]) / n
        values[f"{term}_loss"] = loss
        values[f"{term}_mae"] = float(sums[t, 1]) / n * scale.get(term, 1.0)
        if baseline_sums is not None:
            values[f"{term}_baseline_mae"] = float(baseline_sums[t, 1]) / n * scale.get(term, 1.0)
        total += objective.weights[term] * loss
    values["loss"] = total
    return values


class _Window:
    """Sums over the steps between two log events (reduced over ranks when logged)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.sums = torch.zeros(len(TERMS), 2, dtype=torch.float64, device=device)
        self.counts = torch.zeros(len(TERMS), dtype=torch.float64, device=device)
        self.local = torch.zeros(3, dtype=torch.float64)  # atoms, data wait, step time
        self.steps, self.started = 0, time.perf_counter()

    def add(self, step: dict) -> None:
        self.sums += step["sums"]
        self.counts += step["counts"]  # already global
        self.local += torch.tensor(
            [step["atoms"], step["data_wait"], step["time"]], dtype=torch.float64
        )
        self.steps += 1

    def reduce(self, objective: Objective) -> dict[str, float]:
        sums = all_reduce_sum(self.sums.clone())
        local = all_reduce_sum(self.local.to(self.device)).cpu()
        wall = time.perf_counter() - self.started
        values = metrics(objective, sums, self.counts)
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        values.update(
            atoms_per_s=float(local[0]) / max(wall, 1e-9),
            data_wait_fraction=float(local[1]) / max(float(local[2]), 1e-9),
            step_time_s=float(local[2]) / world / max(self.steps, 1),
        )
        return values
