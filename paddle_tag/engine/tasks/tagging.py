"""Tagging, text or image: a tagger, its loss, labelled splits; evaluation tunes per-tag thresholds on the eval
split and the test split is scored with them. :mod:`.text_tagging` and :mod:`.image_tagging` build it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import paddle

from paddle_tag.config import Config
from paddle_tag.data.dataset import TaggingDataset
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.tokenizer import TextTokenizer
from paddle_tag.engine.checkpoint import load_checkpoint
from paddle_tag.engine.evaluator import evaluate, to_tensors
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.tasks.base import Task
from paddle_tag.errors import ConfigError, ModelLoadError
from paddle_tag.metrics import format_report
from paddle_tag.models import Tagger, save_tagger
from paddle_tag.models.serialization import WEIGHTS_FILE, load_weights
from paddle_tag.utils.io import atomic_write_json, atomic_write_text


def best_metric_name(config: Config) -> str:
    if config.Metric.best != "auto":
        return config.Metric.best
    return "macro_f1" if config.Data.task == "multi_class" else "micro_f1"


def write_tagger(directory: Path, model: Tagger, config: Config, tokenizer: Optional[TextTokenizer], labels: LabelSet,
                 thresholds: Optional[np.ndarray]) -> None:
    """A tagger checkpoint's payload, what :func:`~paddle_tag.engine.checkpoint.load_checkpoint` reads: weights and
    model config, ``tokenizer/`` (text), ``labels.json``, ``thresholds.json`` (per tag; null for multi-class)."""
    save_tagger(model, config.Model.name, directory)
    if tokenizer is not None:  # image taggers have none
        tokenizer.save(directory / "tokenizer")
    labels.save(directory / "labels.json")
    per_label = None if thresholds is None else {n: float(t) for n, t in zip(labels.names, thresholds)}
    atomic_write_json(directory / "thresholds.json", {"task": config.Data.task, "thresholds": per_label})


class Tagging(Task):
    """Fits a :class:`Tagger` (text) or :class:`~paddle_tag.models.image.ImageTagger` on a labelled train split."""

    shown_metrics = ("loss", "accuracy", "macro_f1", "micro_f1", "mAP")

    def __init__(self, config: Config, runtime: Runtime, model: Tagger, loss_fn: paddle.nn.Layer, tokenizer,
                 labels: LabelSet, train_set: TaggingDataset, eval_set: TaggingDataset,
                 test_set: Optional[TaggingDataset] = None) -> None:
        super().__init__(config, runtime, model)
        self.loss_fn, self.tokenizer, self.labels = loss_fn, tokenizer, labels
        self.train_set, self.eval_set, self.test_set = train_set, eval_set, test_set
        self.best_metric = best_metric_name(config)
        self.thresholds: Optional[np.ndarray] = None  # tuned at the latest evaluation (multi-label)

    def num_examples(self) -> int:
        return len(self.train_set)

    def loss_cells(self) -> int:
        # the loss is a mean over a batch's cells: batch × tags (BCE and its kin) or batch (cross-entropy)
        return self.config.Data.batch_size * (self.model.num_labels if self.config.Data.task == "multi_label" else 1)

    def batch_loss(self, forward: paddle.nn.Layer, indices: np.ndarray, step: int) -> paddle.Tensor:
        batch = self.train_set.batch(indices)
        targets = paddle.to_tensor(batch.targets)
        with self.runtime.autocast():
            logits = forward(**to_tensors(batch.inputs))
        return self.loss_fn(logits.astype("float32"), targets)

    def on_fit_start(self, out: Path) -> None:
        if self.runtime.is_main:
            self.labels.save(out / "labels.json")
        self.model.train()

    def evaluate(self, step: int) -> dict:
        metric_cfg, task = self.config.Metric, self.config.Data.task
        metrics, self.thresholds = evaluate(
            self.model, self.eval_set, task, self.labels, tune=metric_cfg.tune_thresholds,
            default_threshold=metric_cfg.default_threshold, batch_size=self.config.Data.eval_batch_size,
            progress=self.config.Global.progress and self.runtime.is_main)
        if self.best_metric not in metrics:
            valid = sorted(k for k, v in metrics.items() if isinstance(v, float))
            raise ConfigError(f"Metric.best={self.best_metric!r} is not a metric of {task}; choose from {valid}")
        return metrics

    def write_weights(self, directory: Path, training: bool) -> None:
        write_tagger(directory, self.model, self.config, self.tokenizer, self.labels, self.thresholds)

    def restore_weights(self, directory: Path) -> None:
        saved_labels = LabelSet.load(directory / "labels.json")
        if saved_labels != self.labels:
            raise ModelLoadError(f"cannot resume from {directory}: its label set differs from this training data's "
                                 f"({len(saved_labels)} vs {len(self.labels)} labels)")
        load_weights(self.model, directory / WEIGHTS_FILE)

    def summary(self, out: Path, best_step: Optional[int]) -> dict:
        """Scores of ``best/`` on the eval and test splits (``report.txt`` per tag); held-out splits use the
        thresholds tuned on the eval split: honest figures."""
        result: dict = {"task": self.config.Data.task}
        if best_step is None:
            return result
        best = load_checkpoint(out / "best")
        reports = []
        for name, dataset in [("eval", self.eval_set)] + ([("test", self.test_set)] if self.test_set else []):
            metrics, _ = evaluate(best.model, dataset, self.config.Data.task, self.labels, thresholds=best.thresholds,
                                  batch_size=self.config.Data.eval_batch_size)
            if name == "test":
                result["test"] = {k: v for k, v in metrics.items() if k != "per_class"}
            reports.append(f"== {name} (best checkpoint, step {best_step}) ==\n{format_report(metrics['per_class'])}")
        atomic_write_text(out / "report.txt", "\n\n".join(reports) + "\n")
        return result
