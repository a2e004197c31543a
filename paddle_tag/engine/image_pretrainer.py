"""Contrastive image pretraining (SimCLR, MoCo v2) of a PaddleClas backbone: views, loss, kNN monitor, resume.

A step takes a batch of images and makes two augmented views of each (:func:`simclr_transform` or
:func:`moco_v2_transform` at ``Data.image_size``, drawn from an RNG seeded by ``(seed, step)``, so the
step counter is the augmentation state and a resumed run sees the same views).

- ``simclr``: both views go through backbone + projection head (2-layer MLP with BatchNorm) in *one*
  forward pass of ``2B`` images, then NT-Xent (``2B - 2`` negatives per view). One pass is the
  single-device form of SimCLR's global BatchNorm: the statistics are those of all ``2B`` views, so a
  positive pair cannot be told apart by its own sub-batch's statistics.
- ``moco``: queries from the online backbone + head (2-layer MLP without BatchNorm, as MoCo v2), keys from
  the momentum copy (EMA of the online weights with ``Pretrain.momentum``, updated before the keys are
  computed), InfoNCE against the key of the same image and the ``Pretrain.queue_size`` queued keys of
  earlier batches; then the keys are enqueued. Shuffle-BN on one device: queries and keys are each run in
  ``Pretrain.bn_splits`` sub-batches with their own BatchNorm statistics, the keys after a random
  permutation of the batch (undone afterwards), so a query and its key are normalised with the same
  statistics only with probability ``1 / bn_splits``, as with that many GPUs — the "SplitBatchNorm +
  shuffle" of MoCo's single-GPU CIFAR demo, done by splitting the forward pass instead of replacing the
  BatchNorm layers (running statistics are updated once per sub-batch).

Evaluation embeds ``Pretrain.knn_train_path`` (memory bank) and ``knn_eval_path`` (queries) with the
frozen backbone in eval mode (:func:`eval_transform`, no projection) and reports weighted-kNN top-1,
which selects ``best/``. Checkpoints: :mod:`paddle_tag.engine.image_checkpoint`. One process only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from tqdm.auto import tqdm

from paddle_tag.config import Config, save_config
from paddle_tag.data.augment.image import eval_transform, moco_v2_transform, simclr_transform
from paddle_tag.data.dataset import epoch_order
from paddle_tag.data.images import ImageSet, image_batch
from paddle_tag.engine.checkpoint import resume_checkpoint
from paddle_tag.engine.image_checkpoint import restore_image_pretraining, save_image_pretrain_checkpoint
from paddle_tag.engine.loop import new_state, optimizer_step, record_monitor_eval, run_epochs
from paddle_tag.engine.optim import build_optimizer
from paddle_tag.engine.plots import plot_curves
from paddle_tag.engine.runtime import Runtime
from paddle_tag.errors import ConfigError
from paddle_tag.losses import InfoNCELoss, NTXentLoss
from paddle_tag.losses.moco import MoCoQueue, copy_and_freeze, momentum_update
from paddle_tag.metrics.knn import knn_accuracy
from paddle_tag.models.image import ContrastiveImageModel
from paddle_tag.utils.io import atomic_write_json


@paddle.no_grad()
def embed_images(model: ContrastiveImageModel, images: np.ndarray, size: int, batch_size: int) -> np.ndarray:
    """Backbone features ``(N, D)`` of uint8 images with the eval transform (model left in its mode)."""
    transform, rng = eval_transform(size), np.random.default_rng(0)  # deterministic: rng unused
    return np.concatenate([model.forward_features(paddle.to_tensor(
        image_batch(images[i:i + batch_size], transform, rng))).astype("float32").numpy()
        for i in range(0, len(images), batch_size)])


@dataclass
class ImageKnnMonitor:
    """Single-label images for the kNN monitor: a memory bank and queries."""

    bank: ImageSet
    queries: ImageSet
    size: int
    k: int = 20
    temperature: float = 0.07

    def accuracy(self, model: ContrastiveImageModel, batch_size: int) -> float:
        """Top-1 weighted-kNN accuracy of the backbone features (eval mode; the model is left in train mode)."""
        model.eval()
        try:
            bank = embed_images(model, self.bank.images, self.size, batch_size)
            queries = embed_images(model, self.queries.images, self.size, batch_size)
        finally:
            model.train()
        return knn_accuracy(bank, self.bank.labels, queries, self.queries.labels, len(self.bank.label_names),
                            k=self.k, temperature=self.temperature)


class MoCoKeys(nn.Layer):
    """MoCo's key side: a frozen copy of the online backbone + head (``encoder.*``, ``projection.*``, moved only
    by :func:`momentum_update`) and the :class:`MoCoQueue` of negatives (``queue.*``)."""

    def __init__(self, online: ContrastiveImageModel, queue_size: int, dim: int) -> None:
        super().__init__()
        key = copy_and_freeze(online)
        self.encoder, self.projection = key.encoder, key.projection
        self.queue = MoCoQueue(dim, queue_size)

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        features = self.encoder(images)
        return self.projection(features) if self.projection is not None else features


class ImagePretrainer:
    """Fits a :class:`ContrastiveImageModel` on the images of ``Data.train_path``; writes ``best/``, ``last/``,
    ``curves.png`` and ``metrics.json``."""

    def __init__(self, config: Config, runtime: Runtime, model: ContrastiveImageModel, images: ImageSet,
                 monitor: Optional[ImageKnnMonitor] = None, keys: Optional[MoCoKeys] = None) -> None:
        self.config, self.runtime, self.model, self.images = config, runtime, model, images
        self.monitor, self.keys = monitor, keys
        pre, size = config.Pretrain, config.Data.image_size
        self.method = pre.method
        if self.method == "simclr":
            self.transform, self.loss_fn = simclr_transform(size), NTXentLoss(pre.temperature)
        else:
            self.transform, self.loss_fn = moco_v2_transform(size), InfoNCELoss(pre.temperature)
        self.out = Path(config.Global.output_dir)
        self.steps_per_epoch = len(self._epoch_batches(0))
        if self.steps_per_epoch == 0:
            raise ConfigError(f"no full training batch: {len(images)} images, Data.batch_size={config.Data.batch_size}")
        total = config.Global.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.Global.max_steps) if config.Global.max_steps > 0 else total
        self.optimizer, self.scheduler = build_optimizer(config.Optimizer, model, self.total_steps)
        self.scaler = runtime.grad_scaler()
        self.state = new_state()

    def fit(self) -> dict:
        """Pretrain to ``Global.epochs`` (or ``Global.max_steps``); return the contents of ``metrics.json``."""
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(self.config, self.out / "config.yaml")
        self._maybe_resume()
        self.model.train()
        if self.keys is not None:
            self.keys.train()  # MoCo computes keys with batch statistics, as the online side
        run_epochs(self.state, self.config.Global, self.total_steps, batches_for_epoch=self._epoch_batches,
                   train_step=self._train_step, evaluate=self._evaluate_and_save,
                   current_lr=self.scheduler.get_lr, show_progress=True)
        seconds = self.state["train_time_s"]
        images_done = self.state["global_step"] * self.config.Data.batch_size
        result = {"method": self.method, "backbone": self.model.encoder.name, "steps": self.state["global_step"],
                  "train_time_s": round(seconds, 2), "best_step": self.state["best_step"], "best": self.state["best"],
                  # images per second of training (each image is two views)
                  "samples_per_s": round(images_done / seconds, 2) if seconds else None}
        atomic_write_json(self.out / "metrics.json", result)
        return result

    # -- steps --------------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        # full batches only: NT-Xent's negatives, the BatchNorm splits and the queue advance stay constant
        return epoch_order(len(self.images), self.config.Data.batch_size, self.config.Global.seed, epoch,
                           drop_last=True)

    def views(self, indices: np.ndarray, step: int) -> np.ndarray:
        """float32 ``(2B, 3, S, S)``: view 1 of every image, then view 2, drawn with ``(seed, step)``."""
        rng = np.random.default_rng([self.config.Global.seed, step])
        images = self.images.images[np.asarray(indices)]
        return np.concatenate([image_batch(images, self.transform, rng), image_batch(images, self.transform, rng)])

    def _train_step(self, indices: np.ndarray, step: int) -> float:
        paddle.seed(self.config.Global.seed * 1_000_003 + step)  # the step is the RNG state
        views = paddle.to_tensor(self.views(indices, step))
        loss = self._simclr_loss(views) if self.method == "simclr" else self._moco_loss(views, step)
        return optimizer_step(loss, self.optimizer, self.scheduler, self.scaler, step)

    def _simclr_loss(self, views: paddle.Tensor) -> paddle.Tensor:
        with self.runtime.autocast():
            projections = self.model(views)  # one pass over both views: BatchNorm sees all 2B
        first, second = projections.astype("float32").chunk(2, axis=0)
        return self.loss_fn(first, second)

    def _moco_loss(self, views: paddle.Tensor, step: int) -> paddle.Tensor:
        queries, keys_in = views.chunk(2, axis=0)
        splits = self.config.Pretrain.bn_splits
        with self.runtime.autocast():
            q = paddle.concat([self.model(part) for part in paddle.split(queries, splits)])
        with paddle.no_grad():
            momentum_update(self.model, self.keys, self.config.Pretrain.momentum)
            perm = np.random.default_rng([self.config.Global.seed, step, 1]).permutation(keys_in.shape[0])
            shuffled = paddle.gather(keys_in, paddle.to_tensor(perm))
            with self.runtime.autocast():
                k = paddle.concat([self.keys(part) for part in paddle.split(shuffled, splits)])
            k = paddle.gather(k, paddle.to_tensor(np.argsort(perm))).astype("float32")  # back to batch order
        loss = self.loss_fn(q.astype("float32"), k, negatives=self.keys.queue.negatives())
        self.keys.queue.enqueue(F.normalize(k, axis=1))
        return loss

    # -- evaluation, checkpoints, resume ------------------------------------------------------------
    def _evaluate_and_save(self, step: int) -> None:
        knn = None if self.monitor is None else self.monitor.accuracy(self.model, self.config.Data.eval_batch_size)
        metrics, improved = record_monitor_eval(self.state, step, self.steps_per_epoch, self.total_steps, knn)
        common = dict(model=self.model, config=self.config, metrics=metrics)
        if improved:
            save_image_pretrain_checkpoint(self.out / "best", **common)
        save_image_pretrain_checkpoint(self.out / "last", **common, momentum=self.keys, optimizer=self.optimizer,
                                       trainer_state=self.state)
        plot_curves(self.state["history"], self.out / "curves.png",
                    metric_keys=("knn_top1",) if self.monitor is not None else ())

    def _maybe_resume(self) -> None:
        path = resume_checkpoint(self.config.Global.resume, self.out)
        if path is None:
            return
        self.state.update(restore_image_pretraining(path, self.model, self.optimizer, self.keys))
        tqdm.write(f"[resume] from {path} at step {self.state['global_step']} (epoch {self.state['epoch'] + 1})")
