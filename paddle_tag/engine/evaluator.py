"""Score a dataset with a tagger and compute metrics (with per-class thresholds for multi-label)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import paddle
import paddle.nn.functional as F
from tqdm.auto import tqdm

from paddle_tag.data.dataset import TaggingDataset, epoch_order, iterate
from paddle_tag.data.labels import LabelSet
from paddle_tag.metrics import compute_metrics, tune_thresholds


def to_tensors(inputs: dict[str, np.ndarray]) -> dict[str, paddle.Tensor]:
    """A batch's numpy inputs as Paddle tensors, keyed as the model's keyword arguments."""
    return {name: paddle.to_tensor(value) for name, value in inputs.items()}


@paddle.no_grad()
def predict_scores(model: paddle.nn.Layer, dataset: TaggingDataset, task: str, batch_size: int = 64,
                   progress: bool = False, desc: str = "predict") -> np.ndarray:
    """Probabilities ``(N, C)``: softmax for ``multi_class``, per-tag sigmoid for ``multi_label``."""
    was_training = model.training
    model.eval()
    out = []
    batches = epoch_order(len(dataset), batch_size, seed=0, epoch=0, shuffle=False)
    for batch in tqdm(iterate(dataset, batches), total=len(batches), desc=desc, disable=not progress,
                      leave=False, dynamic_ncols=True):
        logits = model(**to_tensors(batch.inputs)).astype("float32")
        probs = F.softmax(logits, axis=-1) if task == "multi_class" else F.sigmoid(logits)
        out.append(probs.numpy())
    if was_training:
        model.train()
    return np.concatenate(out, axis=0)


def evaluate(model: paddle.nn.Layer, dataset: TaggingDataset, task: str, labels: LabelSet,
             thresholds: Optional[np.ndarray] = None, tune: bool = False, default_threshold: float = 0.5,
             batch_size: int = 64, progress: bool = False) -> tuple[dict, Optional[np.ndarray]]:
    """Metrics of ``model`` on a labelled dataset, and the thresholds they were computed with.

    Multi-label: ``tune=True`` picks per-class thresholds on this set (then the figures are optimistic for
    this set; report a held-out set with the tuned thresholds), else ``thresholds`` or ``default_threshold``.
    """
    if dataset.targets is None:
        raise ValueError("evaluate needs a labelled dataset")
    scores = predict_scores(model, dataset, task, batch_size, progress, desc="eval")
    loss = mean_loss(task, dataset.targets, scores)
    if task == "multi_class":
        return {"loss": loss, **compute_metrics(task, dataset.targets, scores, label_names=labels.names)}, None
    if tune:
        thresholds = tune_thresholds(dataset.targets, scores)
    elif thresholds is None:
        thresholds = np.full(len(labels), default_threshold)
    metrics = {"loss": loss, **compute_metrics(task, dataset.targets, scores, thresholds, label_names=labels.names)}
    at_default = compute_metrics(task, dataset.targets, scores, default_threshold)
    metrics.update({f"{key}@{default_threshold:g}": at_default[key] for key in ("micro_f1", "macro_f1")})
    return metrics, thresholds


def mean_loss(task: str, targets: np.ndarray, probs: np.ndarray) -> float:
    """The training objective (CE or BCE, no label smoothing) recomputed from probabilities."""
    probs = np.clip(probs.astype("float64"), 1e-12, 1 - 1e-12)
    if task == "multi_class":
        return float(-np.log(probs[np.arange(len(targets)), targets]).mean())
    return float(-(targets * np.log(probs) + (1 - targets) * np.log(1 - probs)).mean())
