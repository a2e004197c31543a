"""Build image runs (``Data.modality: image``) from a :class:`Config`, as :mod:`.builder` does for text.

- ``Pretrain.method: simclr | moco`` → :class:`~paddle_tag.engine.image_pretrainer.ImagePretrainer` on the
  images of ``Data.train_path`` (labels, if any, unused), kNN monitor on ``Pretrain.knn_*_path``;
- otherwise → the text path's :class:`~paddle_tag.engine.trainer.Trainer` with an
  :class:`~paddle_tag.models.image.ImageTagger` and :class:`~paddle_tag.data.images.ImageDataset` splits
  (multi-label on Fashion-MNIST mosaics, or multi-class on Fashion-MNIST), starting from
  ``Model.pretrained`` (a pretraining ``best/`` or ``last/``) when set.

PaddleClas is imported only when an image run is built (it takes seconds); :func:`check_modality` is cheap.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import paddle

from paddle_tag.config import Config
from paddle_tag.config.schema import IMAGE_BACKBONES
from paddle_tag.data.labels import LabelSet
from paddle_tag.engine.builder import check_run_sizes
from paddle_tag.engine.runtime import setup_runtime
from paddle_tag.errors import ConfigError, DataError

if TYPE_CHECKING:
    from paddle_tag.data.images import ImageDataset, ImageSet
    from paddle_tag.engine.image_pretrainer import ImageKnnMonitor, ImagePretrainer
    from paddle_tag.engine.trainer import Trainer

TEXT_METHODS, IMAGE_METHODS = ("simcse",), ("simclr", "moco")


def check_modality(config: Config) -> None:
    """``Data.modality``, ``Model.name`` and ``Pretrain.method`` must agree (text encoders and SimCSE for
    text, PaddleClas backbones and SimCLR / MoCo for images)."""
    name, method, image = config.Model.name, config.Pretrain.method, config.Data.modality == "image"
    if not image and name in IMAGE_BACKBONES:
        raise ConfigError(f"Model.name={name} is an image backbone but Data.modality=text: set Data.modality=image "
                          f"(with .npz data paths) or a text encoder (ernie, bert)")
    if image and name not in IMAGE_BACKBONES:
        raise ConfigError(f"Data.modality=image needs an image backbone as Model.name "
                          f"({', '.join(IMAGE_BACKBONES)}), got {name}")
    if not image and method in IMAGE_METHODS:
        raise ConfigError(f"Pretrain.method={method} pretrains images (Data.modality=image); text uses simcse")
    if image and method in TEXT_METHODS:
        raise ConfigError(f"Pretrain.method={method} pretrains text; images use {' or '.join(IMAGE_METHODS)}")


def check_image_config(config: Config, required_paths: tuple[str, ...]) -> None:
    from paddle_tag.data.images import MIN_IMAGE_SIZE

    check_modality(config)
    check_run_sizes(config, required_paths)
    size = config.Data.image_size
    if size < MIN_IMAGE_SIZE:
        raise ConfigError(f"Data.image_size must be >= {MIN_IMAGE_SIZE}, got {size}")


def build_image_run(config: Config) -> "Trainer | ImagePretrainer":
    """``tools/train.py``'s image run: contrastive pretraining when ``Pretrain.method`` is set, else tagging."""
    return build_image_pretrainer(config) if config.Pretrain.method else build_image_trainer(config)


def _check_task(image_set: "ImageSet", task: str) -> None:
    if image_set.task != task:
        kind = "multi-hot (multi-label)" if image_set.task == "multi_label" else "single (class id)"
        raise ConfigError(f"{image_set.path} has {kind} labels but Data.task={task}; set Data.task={image_set.task}")


def load_image_dataset(path: str, config: Config, labels: LabelSet, split: str,
                       augment: bool = False) -> "ImageDataset":
    """Read and check one labelled ``.npz`` split against the training label set."""
    from paddle_tag.data.images import ImageDataset, read_image_set

    image_set = read_image_set(path)
    _check_task(image_set, config.Data.task)
    if image_set.label_names != labels.names:
        raise DataError(f"the {split} images {path} have the classes {image_set.label_names[:10]}, the model was "
                        f"trained on {labels.names[:10]} (labels.json next to the .npz files must agree)")
    return ImageDataset(image_set, config.Data.image_size, augment=augment, seed=config.Global.seed)


def build_image_trainer(config: Config) -> "Trainer":
    """An image tagger fine-tuned by the text path's :class:`Trainer` (no tokenizer)."""
    from paddle_tag.data.images import ImageDataset, read_image_set
    from paddle_tag.engine.image_checkpoint import load_pretrained_backbone
    from paddle_tag.engine.trainer import Trainer
    from paddle_tag.losses import build_loss
    from paddle_tag.models.backbones import ImageEncoder
    from paddle_tag.models.image import ImageTagger

    data = config.Data
    check_image_config(config, ("train_path", "eval_path"))
    runtime = setup_runtime(config.Global)
    paddle.seed(config.Global.seed)
    train = read_image_set(data.train_path)
    _check_task(train, data.task)
    labels = LabelSet(train.label_names)
    train_set = ImageDataset(train, data.image_size, augment=True, seed=config.Global.seed)
    eval_set = load_image_dataset(data.eval_path, config, labels, "eval")
    test_set = load_image_dataset(data.test_path, config, labels, "test") if data.test_path else None
    with paddle.utils.unique_name.guard():
        model = ImageTagger(ImageEncoder(config.Model.name), len(labels), config.Model.head_dropout, data.image_size)
    if config.Model.pretrained:
        load_pretrained_backbone(model.encoder, config.Model.pretrained)
    if config.Model.head_bias_init == "prior":
        model.init_head_bias(train_set.targets, data.task)
    return Trainer(config, runtime, model, build_loss(config.Loss, data.task), None, labels, train_set, eval_set,
                   test_set)


def image_knn_monitor(config: Config) -> "Optional[ImageKnnMonitor]":
    """The kNN monitor of ``Pretrain.knn_*``: single-label ``.npz`` bank and queries; None when not set."""
    from paddle_tag.data.images import read_image_set
    from paddle_tag.engine.image_pretrainer import ImageKnnMonitor

    pre = config.Pretrain
    if not (pre.knn_train_path or pre.knn_eval_path):
        return None
    if not (pre.knn_train_path and pre.knn_eval_path):
        raise ConfigError("the kNN monitor needs both Pretrain.knn_train_path and Pretrain.knn_eval_path")
    if pre.knn_max_items < 0 or pre.knn_k < 1 or pre.knn_temperature <= 0:
        raise ConfigError("Pretrain.knn_max_items must be >= 0, knn_k >= 1 and knn_temperature > 0")
    bank, queries = read_image_set(pre.knn_train_path), read_image_set(pre.knn_eval_path)
    for image_set in (bank, queries):
        if image_set.task != "multi_class":
            raise ConfigError(f"the kNN monitor needs single-label images (class ids); {image_set.path} is multi-label")
    if bank.label_names != queries.label_names:
        raise DataError(f"kNN monitor: {bank.path} and {queries.path} name different classes")
    # a fixed sample (seeds 0 and 1, not Global.seed) so kNN figures compare across runs
    return ImageKnnMonitor(bank.subset(pre.knn_max_items, 0), queries.subset(pre.knn_max_items, 1),
                           config.Data.image_size, pre.knn_k, pre.knn_temperature)


def _check_pretrain(config: Config) -> None:
    pre, batch = config.Pretrain, config.Data.batch_size
    if pre.temperature <= 0:
        raise ConfigError(f"Pretrain.temperature must be positive, got {pre.temperature}")
    if pre.projection_layers < 0 or pre.projection_hidden < 0 or pre.projection_dim < 0:
        raise ConfigError("Pretrain.projection_layers / projection_hidden / projection_dim must be >= 0")
    if batch < 2:
        raise ConfigError(f"contrastive pretraining needs Data.batch_size >= 2 (negatives, BatchNorm), got {batch}")
    if config.Global.amp == "O2":
        raise ConfigError("image pretraining supports Global.amp O1 or null, not O2")
    if pre.method == "moco":
        if pre.queue_size < 1 or not 0.0 <= pre.momentum <= 1.0:
            raise ConfigError(f"MoCo needs Pretrain.queue_size >= 1 and Pretrain.momentum in [0, 1], got "
                              f"{pre.queue_size} and {pre.momentum}")
        if pre.bn_splits < 1 or batch % pre.bn_splits or batch // pre.bn_splits < 2:
            raise ConfigError(f"Pretrain.bn_splits={pre.bn_splits} must divide Data.batch_size={batch} into "
                              f"sub-batches of at least 2 images")


def build_image_pretrainer(config: Config) -> "ImagePretrainer":
    """SimCLR or MoCo v2 pretraining of ``Model.name`` on the images of ``Data.train_path``."""
    from paddle_tag.data.images import read_image_set
    from paddle_tag.engine.image_checkpoint import load_pretrained_backbone
    from paddle_tag.engine.image_pretrainer import ImagePretrainer, MoCoKeys
    from paddle_tag.models.backbones import ImageEncoder
    from paddle_tag.models.heads import ProjectionHead
    from paddle_tag.models.image import ContrastiveImageModel

    check_image_config(config, ("train_path",))
    _check_pretrain(config)
    monitor = image_knn_monitor(config)
    runtime = setup_runtime(config.Global)
    if runtime.world_size > 1:
        raise ConfigError("image pretraining runs in one process; launch it without paddle.distributed.launch")
    paddle.seed(config.Global.seed)
    images = read_image_set(config.Data.train_path, require_labels=False)
    pre = config.Pretrain
    with paddle.utils.unique_name.guard():
        encoder = ImageEncoder(config.Model.name)
        dim = encoder.feature_dim
        projection = None
        if pre.projection_layers > 0:  # SimCLR's head has BatchNorm, MoCo v2's does not
            projection = ProjectionHead(dim, pre.projection_hidden or dim, pre.projection_dim or dim,
                                        pre.projection_layers, batch_norm=pre.method == "simclr")
            dim = projection.out_dim
        model = ContrastiveImageModel(encoder, projection)
    if config.Model.pretrained:
        load_pretrained_backbone(encoder, config.Model.pretrained)
    keys = MoCoKeys(model, pre.queue_size, dim) if pre.method == "moco" else None
    return ImagePretrainer(config, runtime, model, images, monitor, keys)
