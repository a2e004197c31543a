"""The training loop: seeded, resumable after a kill, data-parallel ready, with progress bars.

Reproducibility: the batch order of an epoch is drawn from ``seed + epoch`` and the dropout RNG is
re-seeded from ``(seed, step)`` before every step, so the step counter *is* the RNG state and a run
resumed from ``last/`` ends with the same weights and metrics as an uninterrupted one.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import paddle
from tqdm.auto import tqdm

from paddle_tag.config import Config, save_config
from paddle_tag.data.dataset import TaggingDataset, epoch_order
from paddle_tag.data.labels import LabelSet
from paddle_tag.engine.checkpoint import (
    load_checkpoint,
    restore_training,
    resume_checkpoint,
    save_checkpoint,
)
from paddle_tag.engine.evaluator import evaluate, to_tensors
from paddle_tag.engine.loop import new_state, optimizer_step, run_epochs
from paddle_tag.engine.optim import JointOptimizer, build_optimizer
from paddle_tag.engine.plots import plot_curves
from paddle_tag.engine.runtime import Runtime
from paddle_tag.errors import ConfigError, ModelLoadError
from paddle_tag.metrics import format_report
from paddle_tag.models import Tagger
from paddle_tag.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("paddle_tag")


def best_metric_name(config: Config) -> str:
    if config.Metric.best != "auto":
        return config.Metric.best
    return "macro_f1" if config.Data.task == "multi_class" else "micro_f1"


class Trainer:
    """Fits a :class:`Tagger` on a train set, evaluating on an eval set and keeping ``best/`` and ``last/``."""

    def __init__(self, config: Config, runtime: Runtime, model: Tagger, loss_fn: paddle.nn.Layer, tokenizer,
                 labels: LabelSet, train_set: TaggingDataset, eval_set: TaggingDataset,
                 test_set: Optional[TaggingDataset] = None):
        self.config, self.runtime = config, runtime
        self.model, self.loss_fn, self.tokenizer, self.labels = model, loss_fn, tokenizer, labels
        self.train_set, self.eval_set, self.test_set = train_set, eval_set, test_set
        self.out = Path(config.Global.output_dir)
        self.task = config.Data.task
        self.best_key = best_metric_name(config)
        self.steps_per_epoch = len(self._epoch_batches(0))
        if self.steps_per_epoch == 0:
            raise ConfigError(f"no training batches: {len(train_set)} examples, Data.batch_size="
                              f"{config.Data.batch_size}, {runtime.world_size} worker(s)")
        total = config.Global.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.Global.max_steps) if config.Global.max_steps > 0 else total
        # the loss is a mean over a batch's cells: batch × tags (BCE and its kin) or batch (cross-entropy)
        cells = config.Data.batch_size * (model.num_labels if config.Data.task == "multi_label" else 1)
        self.optimizer, self.scheduler = build_optimizer(config.Optimizer, model, self.total_steps, cells)
        if runtime.amp_level == "O2":  # low-precision parameters, fp32 master weights in the optimizer(s)
            parts = list(getattr(self.optimizer, "parts", [self.optimizer]))
            model, parts = paddle.amp.decorate(models=model, optimizers=parts, level="O2",
                                               dtype=runtime.amp_dtype, master_weight=True)
            self.model, self.optimizer = model, JointOptimizer(*parts) if len(parts) > 1 else parts[0]
        self.scaler = runtime.grad_scaler()
        self.parallel_model = paddle.DataParallel(model) if runtime.world_size > 1 else model
        self.thresholds: Optional[np.ndarray] = None
        self.state = new_state()

    # -- public -------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to ``Global.epochs`` (or ``Global.max_steps``); return the contents of ``metrics.json``."""
        if self.runtime.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out / "config.yaml")
            self.labels.save(self.out / "labels.json")
        self._maybe_resume()
        self.model.train()
        run_epochs(self.state, self.config.Global, self.total_steps, batches_for_epoch=self._epoch_batches,
                   train_step=lambda indices, step: self._train_step(self.train_set.batch(indices), step),
                   evaluate=self._evaluate_and_save, current_lr=self.scheduler.get_lr,
                   show_progress=self.runtime.is_main)
        return self._finish()

    # -- steps --------------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        return epoch_order(len(self.train_set), self.config.Data.batch_size, self.config.Global.seed, epoch,
                           shuffle=True, rank=self.runtime.rank, world_size=self.runtime.world_size)

    def _train_step(self, batch, step: int) -> float:
        paddle.seed(self.config.Global.seed * 1_000_003 + step)  # the step is the RNG state
        targets = paddle.to_tensor(batch.targets)
        with self.runtime.autocast():
            logits = self.parallel_model(**to_tensors(batch.inputs))
        loss = self.loss_fn(logits.astype("float32"), targets)
        return optimizer_step(loss, self.optimizer, self.scheduler, self.scaler, step)

    def _evaluate_and_save(self, step: int) -> None:
        metric_cfg = self.config.Metric
        metrics, thresholds = evaluate(self.model, self.eval_set, self.task, self.labels,
                                       tune=metric_cfg.tune_thresholds, default_threshold=metric_cfg.default_threshold,
                                       batch_size=self.config.Data.eval_batch_size,
                                       progress=self.config.Global.progress and self.runtime.is_main)
        if self.best_key not in metrics:
            valid = sorted(k for k, v in metrics.items() if isinstance(v, float))
            raise ConfigError(f"Metric.best={self.best_key!r} is not a metric of {self.task}; choose from {valid}")
        self.thresholds = thresholds
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        epoch = round(step / self.steps_per_epoch, 2)
        self.state["history"]["eval"].append({"step": step, "epoch": epoch, **scalars})
        improved = self.state["best"] is None or metrics[self.best_key] > self.state["best"][self.best_key]
        if improved:
            self.state["best"], self.state["best_step"] = scalars, step
        shown = " ".join(f"{k}={scalars[k]:.4f}" for k in ("loss", "accuracy", "macro_f1", "micro_f1", "mAP")
                         if k in scalars)
        tqdm.write(f"[eval] step {step}/{self.total_steps} epoch {epoch:g}: {shown}"
                   f"{'  (best)' if improved else ''}")
        if not self.runtime.is_main:
            return
        common = dict(model=self.model, tokenizer=self.tokenizer, labels=self.labels, thresholds=thresholds,
                      config=self.config, metrics={"step": step, **metrics})
        if improved:
            save_checkpoint(self.out / "best", **common)
        save_checkpoint(self.out / "last", **common, optimizer=self.optimizer, trainer_state=self.state)
        plot_curves(self.state["history"], self.out / "curves.png")

    # -- resume and finish --------------------------------------------------------------------------
    def _maybe_resume(self) -> None:
        path = resume_checkpoint(self.config.Global.resume, self.out)
        if path is None:
            return
        saved_labels = LabelSet.load(path / "labels.json")
        if saved_labels != self.labels:
            raise ModelLoadError(f"cannot resume from {path}: its label set differs from this training data's "
                                 f"({len(saved_labels)} vs {len(self.labels)} labels)")
        self.state.update(restore_training(path, self.model, self.optimizer))
        tqdm.write(f"[resume] from {path} at step {self.state['global_step']} (epoch {self.state['epoch'] + 1})")

    def _finish(self) -> dict:
        result = {"task": self.task, "best_metric": self.best_key, "steps": self.state["global_step"],
                  "epochs_done": self.state["epoch"], "train_time_s": round(self.state["train_time_s"], 2),
                  "best_step": self.state["best_step"], "best": self.state["best"],
                  "final": self.state["history"]["eval"][-1] if self.state["history"]["eval"] else None}
        if self.runtime.is_main and self.state["best"] is not None:
            best = load_checkpoint(self.out / "best")
            report_sets = [("eval", self.eval_set)] + ([("test", self.test_set)] if self.test_set else [])
            reports = []
            for name, dataset in report_sets:
                # held-out sets use the thresholds tuned on the eval set: honest figures
                metrics, _ = evaluate(best.model, dataset, self.task, self.labels, thresholds=best.thresholds,
                                      batch_size=self.config.Data.eval_batch_size)
                if name == "test":
                    result["test"] = {k: v for k, v in metrics.items() if k != "per_class"}
                reports.append(f"== {name} (best checkpoint, step {self.state['best_step']}) ==\n"
                               f"{format_report(metrics['per_class'])}")
            atomic_write_text(self.out / "report.txt", "\n\n".join(reports) + "\n")
            atomic_write_json(self.out / "metrics.json", result)
        return result
