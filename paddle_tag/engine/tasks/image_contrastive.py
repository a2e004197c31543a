"""What SimCLR and MoCo v2 share: a PaddleClas backbone + projection head, two augmented views per image, the kNN
monitor, and the backbone checkpoint that ``Model.pretrained`` of an image tagging run loads.

Views are drawn from an RNG seeded by ``(seed, step)``, so the step counter is the augmentation state and a
resumed run sees the same views. Evaluation embeds ``Pretrain.knn_train_path`` (memory bank) and ``knn_eval_path``
(queries) with the frozen backbone in eval mode (no projection) and reports weighted-kNN top-1, which selects
``best/``. Payload: ``backbone.safetensors`` (weights and BatchNorm statistics, float32) + ``backbone.json``
(``backbone``, ``feature_dim``, ``image_size``) + ``projection.safetensors`` (to resume). One process only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import paddle
from safetensors.numpy import save_file

from paddle_tag.config import Config
from paddle_tag.data.images import ImageSet, image_batch, read_image_set
from paddle_tag.engine.checkpoint import BACKBONE_CONFIG, BACKBONE_WEIGHTS, load_backbone
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.tasks.base import Task
from paddle_tag.errors import ConfigError, DataError
from paddle_tag.metrics.knn import knn_accuracy
from paddle_tag.models.backbones import ImageEncoder
from paddle_tag.models.heads import ProjectionHead
from paddle_tag.models.image import ContrastiveImageModel, embed_images
from paddle_tag.models.serialization import load_weights, state_to_numpy
from paddle_tag.utils.io import atomic_write_json

PROJECTION_WEIGHTS = "projection.safetensors"


@dataclass
class ImageKnnMonitor:
    """Single-label images for the kNN monitor: a memory bank and queries."""

    bank: ImageSet
    queries: ImageSet
    size: int  # Data.image_size
    k: int  # Pretrain.knn_k
    temperature: float  # Pretrain.knn_temperature

    @classmethod
    def from_config(cls, config: Config) -> Optional["ImageKnnMonitor"]:
        """The monitor of ``Pretrain.knn_*``: single-label ``.npz`` bank and queries; None when not set."""
        if not config.Pretrain.knn_train_path:
            return None
        pre = config.Pretrain
        bank, queries = read_image_set(pre.knn_train_path), read_image_set(pre.knn_eval_path)
        for image_set in (bank, queries):
            if image_set.task != "multi_class":
                raise ConfigError(f"the kNN monitor needs single-label images (class ids); {image_set.path} is "
                                  f"multi-label")
        if bank.label_names != queries.label_names:
            raise DataError(f"kNN monitor: {bank.path} and {queries.path} name different classes")
        # a fixed sample (seeds 0 and 1, not Global.seed) so kNN figures compare across runs
        return cls(bank.subset(pre.knn_max_items, 0), queries.subset(pre.knn_max_items, 1), config.Data.image_size,
                   pre.knn_k, pre.knn_temperature)

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


def contrastive_image_model(config: Config, batch_norm_head: bool) -> ContrastiveImageModel:
    """``Model.name`` (from ``Model.pretrained`` when set) + the ``Pretrain.projection_*`` head."""
    pre = config.Pretrain
    with paddle.utils.unique_name.guard():
        encoder = ImageEncoder(config.Model.name)
        dim = encoder.feature_dim
        projection = None
        if pre.projection_layers > 0:
            projection = ProjectionHead(dim, pre.projection_hidden or dim, pre.projection_dim or dim,
                                        pre.projection_layers, batch_norm=batch_norm_head)
        model = ContrastiveImageModel(encoder, projection)
    if config.Model.pretrained:
        load_backbone(encoder, config.Model.pretrained)
    return model


class ImageContrastive(Task):
    """The base of :class:`~.simclr.SimCLR` and :class:`~.moco.MoCo`: data, views, monitor, checkpoints."""

    drop_last = True  # the negatives, the BatchNorm splits and the queue advance stay constant

    def __init__(self, config: Config, runtime: Runtime, model: ContrastiveImageModel, images: ImageSet,
                 transform: Callable, loss_fn: paddle.nn.Layer, monitor: Optional[ImageKnnMonitor] = None) -> None:
        if runtime.world_size > 1:
            raise ConfigError("image pretraining runs in one process; launch it without paddle.distributed.launch")
        super().__init__(config, runtime, model)
        self.images, self.transform, self.loss_fn, self.monitor = images, transform, loss_fn, monitor
        if monitor is not None:
            self.best_metric, self.shown_metrics = "knn_top1", ("knn_top1",)

    @staticmethod
    def read_data(config: Config) -> tuple[ImageSet, Optional[ImageKnnMonitor]]:
        return read_image_set(config.Data.train_path, require_labels=False), ImageKnnMonitor.from_config(config)

    def num_examples(self) -> int:
        return len(self.images)

    def views(self, indices: np.ndarray, step: int) -> np.ndarray:
        """float32 ``(2B, 3, S, S)``: view 1 of every image, then view 2, drawn with ``(seed, step)``."""
        rng = np.random.default_rng([self.config.Global.seed, step])
        images = self.images.images[np.asarray(indices)]
        return np.concatenate([image_batch(images, self.transform, rng), image_batch(images, self.transform, rng)])

    def evaluate(self, step: int) -> dict:
        if self.monitor is None:
            return {}
        return {"knn_top1": self.monitor.accuracy(self.model, self.config.Data.eval_batch_size)}

    def write_weights(self, directory: Path, training: bool) -> None:
        encoder = self.model.encoder
        save_file(state_to_numpy(encoder), str(directory / BACKBONE_WEIGHTS))
        atomic_write_json(directory / BACKBONE_CONFIG, {"backbone": encoder.name, "feature_dim": encoder.feature_dim,
                                                        "image_size": self.config.Data.image_size})
        if self.model.projection is not None:
            save_file(state_to_numpy(self.model.projection), str(directory / PROJECTION_WEIGHTS))

    def restore_weights(self, directory: Path) -> None:
        load_weights(self.model.encoder, directory / BACKBONE_WEIGHTS)
        if self.model.projection is not None:
            load_weights(self.model.projection, directory / PROJECTION_WEIGHTS)

    def summary(self, out: Path, best_step: Optional[int]) -> dict:
        return {"method": self.kind, "backbone": self.model.encoder.name}
