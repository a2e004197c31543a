"""Image tagging (``Data.modality: image``): a PaddleClas backbone + head on ``.npz`` splits (multi-label on
Fashion-MNIST mosaics, multi-class on Fashion-MNIST), starting from ``Model.pretrained`` (a ``simclr`` / ``moco``
run's ``best/`` or ``last/``, or a backbone ``.safetensors``) when set."""
from __future__ import annotations

import paddle

from paddle_tag.config import Config
from paddle_tag.data.images import ImageDataset, ImageSet, read_image_set
from paddle_tag.data.labels import LabelSet
from paddle_tag.engine.checkpoint import load_backbone
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.tasks.tagging import Tagging
from paddle_tag.errors import ConfigError, DataError
from paddle_tag.losses import build_loss
from paddle_tag.models.backbones import ImageEncoder
from paddle_tag.models.image import ImageTagger


def check_task(image_set: ImageSet, task: str) -> None:
    """The labels of an ``.npz`` split must be of the kind ``Data.task`` says."""
    if image_set.task != task:
        kind = "multi-hot (multi-label)" if image_set.task == "multi_label" else "single (class id)"
        raise ConfigError(f"{image_set.path} has {kind} labels but Data.task={task}; set Data.task={image_set.task}")


def load_image_split(path: str, config: Config, labels: LabelSet, split: str, augment: bool = False) -> ImageDataset:
    """Read and check one labelled ``.npz`` split against the training label set."""
    image_set = read_image_set(path)
    check_task(image_set, config.Data.task)
    if image_set.label_names != labels.names:
        raise DataError(f"the {split} images {path} have the classes {image_set.label_names[:10]}, the model was "
                        f"trained on {labels.names[:10]} (labels.json next to the .npz files must agree)")
    return ImageDataset(image_set, config.Data.image_size, augment=augment, seed=config.Global.seed)


class ImageTagging(Tagging):
    """An image tagger fine-tuned like a text one (no tokenizer)."""

    kind = "image_tagging"

    @classmethod
    def from_config(cls, config: Config, runtime: Runtime) -> "ImageTagging":
        data = config.Data
        train = read_image_set(data.train_path)
        check_task(train, data.task)
        labels = LabelSet(train.label_names)
        train_set = ImageDataset(train, data.image_size, augment=True, seed=config.Global.seed)
        eval_set = load_image_split(data.eval_path, config, labels, "eval")
        test_set = load_image_split(data.test_path, config, labels, "test") if data.test_path else None
        with paddle.utils.unique_name.guard():
            model = ImageTagger(ImageEncoder(config.Model.name), len(labels), config.Model.head_dropout,
                                data.image_size)
        if config.Model.pretrained:
            load_backbone(model.encoder, config.Model.pretrained)
        if config.Model.head_bias_init == "prior":
            model.init_head_bias(train_set.targets, data.task)
        return cls(config, runtime, model, build_loss(config.Loss, data.task), None, labels, train_set, eval_set,
                   test_set)
