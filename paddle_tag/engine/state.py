"""The state of a training run: where it is, what it has seen, what it must restore to go on exactly.

The dropout and augmentation RNGs are re-seeded from ``(Global.seed, step)`` before every step and an epoch's
batch order is drawn from ``(Global.seed, epoch)``, so ``global_step`` and the position in the epoch *are* the
RNG state: a run resumed from ``last/`` ends with the same weights and metrics as an uninterrupted one. The
optimizer's tensors are saved beside this state (``optimizer.safetensors``); the AMP loss scaler's few
numbers are part of it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


def _history() -> dict[str, list[dict]]:
    return {"train": [], "eval": []}


@dataclass
class TrainState:
    """Everything besides weights and optimizer tensors that ``trainer_state.json`` holds."""

    global_step: int = 0
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch already trained
    best: Optional[dict] = None  # the evaluation record that selected best/
    best_step: Optional[int] = None
    history: dict[str, list[dict]] = field(default_factory=_history)  # train: loss/lr records, eval: evaluations
    train_time_s: float = 0.0  # seconds in training steps (evaluation excluded)
    scaler: Optional[dict] = None  # the float16 loss scaler's state (GPU AMP), None without one

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> "TrainState":
        """The state saved by :meth:`to_json`; keys this version does not know are ignored (older formats wrote
        ``optimizer_extra`` beside these)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in saved.items() if key in known})


def scaler_state(scaler) -> Optional[dict]:
    """A ``paddle.amp.GradScaler``'s state as JSON-able numbers (None without a scaler)."""
    if scaler is None:
        return None
    state = scaler.state_dict()
    return {k: (np.asarray(v).tolist() if hasattr(v, "shape") or isinstance(v, np.generic) else v)
            for k, v in state.items()}
