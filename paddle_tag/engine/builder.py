"""Build a run from a :class:`Config`: validate it, pick the task, set up the device, hand both to the trainer.

``TASKS`` is the one table of kinds of training; a task's ``from_config`` builds its data and model.
"""
from __future__ import annotations

import paddle

from paddle_tag.config import Config, validate
from paddle_tag.config.recommend_schema import TWO_TOWER_MODELS
from paddle_tag.data.dataset import TaggingDataset
from paddle_tag.data.images import ImageDataset
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.tokenizer import TextTokenizer
from paddle_tag.engine.runtime import setup_runtime
from paddle_tag.engine.tasks.base import Task
from paddle_tag.engine.tasks.image_tagging import ImageTagging, load_image_split
from paddle_tag.engine.tasks.moco import MoCo
from paddle_tag.engine.tasks.next_item import NextItem
from paddle_tag.engine.tasks.simclr import SimCLR
from paddle_tag.engine.tasks.simcse import SimCSE
from paddle_tag.engine.tasks.text_tagging import TextTagging, load_text_split
from paddle_tag.engine.tasks.two_tower import TwoTower
from paddle_tag.engine.trainer import Trainer

TASKS: dict[str, type[Task]] = {
    "text_tagging": TextTagging,
    "image_tagging": ImageTagging,
    "simcse": SimCSE,
    "simclr": SimCLR,
    "moco": MoCo,
    "next_item": NextItem,
    "two_tower": TwoTower,
}


def task_name(config: Config) -> str:
    """``Pretrain.method`` when set (simcse, simclr, moco), next-item prediction (or two-tower retrieval) for
    sequences, else tagging of ``Data.modality``."""
    if config.Pretrain.method:
        return config.Pretrain.method
    if config.Data.modality == "sequence" and config.Model.name in TWO_TOWER_MODELS:
        return "two_tower"
    return {"text": "text_tagging", "image": "image_tagging", "sequence": "next_item"}[config.Data.modality]


def build_run(config: Config) -> Trainer:
    """``tools/train.py``'s run: the task ``config`` names, ready to ``fit()``."""
    validate(config, training=True)
    runtime = setup_runtime(config.Global)
    paddle.seed(config.Global.seed)
    task = TASKS[task_name(config)].from_config(config, runtime)
    return Trainer(config, runtime, task)


def load_dataset(path: str, config: Config, tokenizer: TextTokenizer | None, labels: LabelSet,
                 split: str) -> TaggingDataset | ImageDataset:
    """One labelled split for a tagger (an ``.npz`` image split when ``Data.modality=image``)."""
    if config.Data.modality == "image":
        return load_image_split(path, config, labels, split)
    return load_text_split(path, config, tokenizer, labels, split)
