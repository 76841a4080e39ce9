"""DeepSpeed's `.pt` checkpoint files, read without running code from them.

DeepSpeed writes its state with torch.save (a pickle) and reads it back with torch.load(weights_only=False),
which runs whatever a crafted file asks for. Run directories are shared on clusters, so the engine's checkpoint
engine is swapped for one that reads with torch's weights-only unpickler: tensors, containers, plain scalars and
the four data-only DeepSpeed types a ZeRO 0-2 checkpoint holds (listed in SAFE_GLOBALS, found by loading the
checkpoints of every stage and precision). Anything else is refused with an error naming the file. DeepSpeed
is imported here at module level: import this module only where an engine exists.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile

import torch
from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
from deepspeed.runtime.zero.config import ZeroStageEnum
from deepspeed.utils.tensor_fragment import fragment_address

# ZeRO 1/2 optimizer files: the loss scaler (static for fp32/bf16, dynamic for fp16), the stage as an enum,
# and the bf16 fragment map (a dataclass of two ints). None defines __setstate__ or __reduce__.
SAFE_GLOBALS = (LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address)


class UnsafeCheckpointError(ValueError):
    """A checkpoint file that cannot be read without unpickling arbitrary objects (or cannot be read at all)."""


def load_weights_only(path: str | os.PathLike, map_location=None):
    """torch.load with the weights-only unpickler and SAFE_GLOBALS; any refusal names the file."""
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path}: refused to load: {_refusal_reason(str(exc))}; only tensors, plain "
            "data and DeepSpeed's data-only types are read; nothing from it ran"
        ) from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
    ) as exc:  # truncated or not a torch file
        raise UnsafeCheckpointError(f"{path}: unreadable checkpoint file ({exc})") from None


def _refusal_reason(message: str) -> str:
    """The object a refused pickle asked for, out of torch's long weights-only message."""
    wanted = re.search(r"GLOBAL ([\w.]+)", message)
    if wanted:
        return f"it asks for {wanted.group(1)}"
    detail = [line.strip() for line in message.splitlines() if "WeightsUnpickler error" in line]
    return (
        detail[0] if detail else message.splitlines()[0] if message else "not a weights-only pickle"
    )


class WeightsOnlyCheckpointEngine(TorchCheckpointEngine):
    """DeepSpeed's torch checkpoint engine with `load` going through `load_weights_only` (saving unchanged)."""

    def load(self, path: str, map_location=None):
        return load_weights_only(path, map_location=map_location)


def use_weights_only_loading(engine) -> None:
    """Make every checkpoint file `engine.load_checkpoint` reads go through the weights-only loader."""
    current = engine.checkpoint_engine
    if isinstance(current, WeightsOnlyCheckpointEngine):
        return
    if type(current) is not TorchCheckpointEngine:
        raise RuntimeError(
            f"DeepSpeed checkpoint engine {type(current).__name__} is not supported: resume reads "
            "only through the weights-only loader built on TorchCheckpointEngine"
        )
    engine.checkpoint_engine = WeightsOnlyCheckpointEngine(engine._config)
