"""What a kind of training supplies to the one :class:`~paddle_tag.engine.trainer.Trainer`.

The trainer owns everything runs share: optimizer and LR schedule, AMP, data-parallel wrapping, seeding,
the epoch/step loop, when to evaluate, progress bars, curves, checkpoints and resume. A task owns what differs:
its model and data, the loss of one batch, what an evaluation measures, and which weight files its checkpoints
hold. To add a kind of training, copy the smallest task (:mod:`.simclr`), change those pieces, and add one line
to ``TASKS`` in :mod:`paddle_tag.engine.builder`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import paddle

from paddle_tag.config import Config
from paddle_tag.engine.runtime import Runtime


class Task:
    """One kind of training. Subclasses set the class attributes and implement the methods that raise."""

    kind: str = ""  # the name in TASKS and the checkpoint's "kind"
    drop_last: bool = False  # full batches only (contrastive losses: a constant number of negatives)
    best_metric: Optional[str] = None  # the evaluation key that selects best/ (higher is better); None: the latest
    shown_metrics: tuple[str, ...] = ()  # printed after each evaluation and drawn in curves.png

    def __init__(self, config: Config, runtime: Runtime, model: paddle.nn.Layer) -> None:
        self.config, self.runtime, self.model = config, runtime, model

    # -- data and steps -----------------------------------------------------------------------------------
    def num_examples(self) -> int:
        raise NotImplementedError

    def loss_cells(self) -> int:
        """How many cells a batch's loss is a mean over (the wide part's SGD rate scales with it)."""
        return 1

    def batch_loss(self, forward: paddle.nn.Layer, indices: np.ndarray, step: int) -> paddle.Tensor:
        """The loss of the batch of example ``indices`` at ``step``; ``forward`` is the model or its
        data-parallel wrapper."""
        raise NotImplementedError

    def on_fit_start(self, out: Path) -> None:
        """Put the model(s) in training mode; write what the run directory needs besides checkpoints."""
        self.model.train()

    # -- evaluation and checkpoints -----------------------------------------------------------------------
    def evaluate(self, step: int) -> dict:
        """Metrics of the current model (scalars, plus anything JSON-able for the checkpoint's metrics.json)."""
        raise NotImplementedError

    def write_weights(self, directory: Path, training: bool) -> None:
        """Write the checkpoint's payload into ``directory``; ``training``: also what resuming needs (``last/``)."""
        raise NotImplementedError

    def restore_weights(self, directory: Path) -> None:
        """Load the payload of ``directory`` (a ``last/`` of this kind) into the model(s) to resume."""
        raise NotImplementedError

    def summary(self, out: Path, best_step: Optional[int]) -> dict:
        """Fields this task adds to the run's ``metrics.json`` (main process, after training)."""
        return {}
