"""Contrastive text pretraining (SimCSE): two views of each text, InfoNCE, a kNN monitor.

A step takes a batch of raw texts, makes two views of each (the augmentations of ``Pretrain.*``, drawn from an RNG
seeded by ``(seed, step, rank)``; with none, the views differ only by dropout, which is unsupervised SimCSE), runs
both through the model in one forward pass and applies InfoNCE: view 1 of text *i* must pick view 2 of text *i*
among the views 2 of the whole (cross-rank gathered) batch.

Evaluation embeds the kNN monitor's labelled texts with the frozen encoder (pooled, L2-normalised) and reports
the weighted-kNN top-1 accuracy, which selects ``best/``. The checkpoints' payload is the encoder as a PaddleNLP
model directory (``config.json``, ``model.safetensors``, ``tokenizer.json`` without ``Data.text_prefix``: the
fine-tuning config sets its own) that ``Model.pretrained`` loads, and ``projection.safetensors`` (to resume).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import paddle
from safetensors.numpy import save_file

from paddle_tag.config import Config
from paddle_tag.data.augment import build_text_augment
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import read_examples
from paddle_tag.data.tokenizer import TextTokenizer, encode_texts, load_tokenizer, pad_batch
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.tasks.base import Task
from paddle_tag.engine.tasks.pretrained_text import check_positions, pretrained_model_config
from paddle_tag.losses import InfoNCELoss
from paddle_tag.metrics.knn import knn_accuracy
from paddle_tag.models import build_encoder
from paddle_tag.models.contrastive import ContrastiveTextModel
from paddle_tag.models.embedder import Embedder
from paddle_tag.models.heads import ProjectionHead
from paddle_tag.models.serialization import load_weights, state_to_numpy

Augment = Callable[[str, np.random.Generator], str]
ENCODER_WEIGHTS, PROJECTION_WEIGHTS = "model.safetensors", "projection.safetensors"
AUGMENTATIONS = ("word_deletion", "word_swap", "synonym_replace", "char_mask")


@dataclass
class KnnMonitor:
    """Labelled texts for the kNN monitor: a memory bank and queries, labels as class ids."""

    bank_texts: Sequence[str]
    bank_labels: np.ndarray
    query_texts: Sequence[str]
    query_labels: np.ndarray
    num_classes: int
    k: int = 20
    temperature: float = 0.07

    @classmethod
    def from_config(cls, config: Config) -> Optional["KnnMonitor"]:
        """The monitor of ``Pretrain.knn_*``: single-label texts, bank and queries; None when not set."""
        pre = config.Pretrain
        if not pre.knn_train_path:
            return None
        bank = read_examples(pre.knn_train_path, config.Data.format)
        queries = read_examples(pre.knn_eval_path, config.Data.format)
        labels = LabelSet.from_examples(bank)
        labels.check_known(queries, "kNN monitor")
        return cls([ex.text for ex in bank], labels.encode(bank, "multi_class"), [ex.text for ex in queries],
                   labels.encode(queries, "multi_class"), len(labels), pre.knn_k, pre.knn_temperature)

    def accuracy(self, model: ContrastiveTextModel, tokenizer: TextTokenizer, max_seq_len: int,
                 batch_size: int) -> float:
        """Top-1 weighted-kNN accuracy of the model's pooled embeddings (model left in train mode)."""
        embedder = Embedder(model.encoder, tokenizer, pooling=model.pooling, max_tokens=max_seq_len,
                            batch_size=batch_size)
        try:
            bank = embedder.embed(self.bank_texts)
            queries = embedder.embed(self.query_texts)
        finally:
            model.train()
        return knn_accuracy(bank, self.bank_labels, queries, self.query_labels, self.num_classes,
                            k=self.k, temperature=self.temperature)


def text_augment_spec(config: Config, mask_token: str) -> dict:
    """``Pretrain.*`` augmentation probabilities → the spec of :func:`build_text_augment` (only those > 0)."""
    pre = config.Pretrain
    spec = {name: {"p": getattr(pre, name)} for name in AUGMENTATIONS if getattr(pre, name) > 0}
    if "synonym_replace" in spec:
        spec["synonym_replace"]["synonyms_path"] = pre.synonyms_path
    if "char_mask" in spec:
        spec["char_mask"]["mask"] = mask_token
    return spec


class SimCSE(Task):
    """Fits a :class:`ContrastiveTextModel` on the unlabeled texts of ``Data.train_path``."""

    kind = "simcse"
    drop_last = True  # every rank must gather the same number of negatives

    def __init__(self, config: Config, runtime: Runtime, model: ContrastiveTextModel, tokenizer: TextTokenizer,
                 base_tokenizer: TextTokenizer, texts: Sequence[str], augment: Optional[Augment] = None,
                 monitor: Optional[KnnMonitor] = None) -> None:
        super().__init__(config, runtime, model)
        self.loss_fn = InfoNCELoss(config.Pretrain.temperature)
        self.tokenizer, self.base_tokenizer = tokenizer, base_tokenizer  # base: saved without Data.text_prefix
        self.texts, self.augment, self.monitor = list(texts), augment, monitor
        if monitor is not None:
            self.best_metric, self.shown_metrics = "knn_top1", ("knn_top1",)

    @classmethod
    def from_config(cls, config: Config, runtime: Runtime) -> "SimCSE":
        pre = config.Pretrain
        monitor = KnnMonitor.from_config(config)
        texts = [ex.text for ex in read_examples(config.Data.train_path, config.Data.format, require_labels=False)]
        model_cfg = pretrained_model_config(config, texts, runtime)
        base_tokenizer = load_tokenizer(model_cfg.pretrained, model_cfg.vocab_file)
        mask = next(t for t in ("[MASK]", "<mask>", "[UNK]", "<unk>") if base_tokenizer.token_to_id(t) is not None)
        spec = text_augment_spec(config, mask)
        with paddle.utils.unique_name.guard():
            encoder = build_encoder(model_cfg, len(base_tokenizer), base_tokenizer.pad_token_id)
            hidden = int(encoder.config.hidden_size)
            projection = None
            if pre.projection_layers > 0:  # no BatchNorm: per-rank text batches are small and unevenly long
                projection = ProjectionHead(hidden, pre.projection_hidden or hidden, pre.projection_dim or hidden,
                                            pre.projection_layers, batch_norm=False)
            model = ContrastiveTextModel(encoder, base_tokenizer.pad_token_id, model_cfg.pooling, projection)
        check_positions(config.Data.max_seq_len, encoder, None)
        return cls(config, runtime, model, base_tokenizer.with_prefix(config.Data.text_prefix), base_tokenizer,
                   texts, build_text_augment(spec) if spec else None, monitor)

    def num_examples(self) -> int:
        return len(self.texts)

    def views(self, indices: np.ndarray, step: int) -> np.ndarray:
        """``(2B, T)`` token ids: view 1 of every text, then view 2 (augmented when augmentations are on)."""
        texts = [self.texts[i] for i in indices]
        if self.augment is not None:
            rng = np.random.default_rng([self.config.Global.seed, step, self.runtime.rank])
            texts = [self.augment(t, rng) for t in texts] + [self.augment(t, rng) for t in texts]
        else:
            texts = texts + texts
        encoded = encode_texts(self.tokenizer, texts, self.config.Data.max_seq_len)
        return pad_batch(encoded.input_ids, self.tokenizer.pad_token_id)

    def batch_loss(self, forward: paddle.nn.Layer, indices: np.ndarray, step: int) -> paddle.Tensor:
        input_ids = paddle.to_tensor(self.views(indices, step))
        with self.runtime.autocast():
            embeddings = forward(input_ids)
        first, second = embeddings.astype("float32").chunk(2, axis=0)
        return self.loss_fn(first, second)

    def evaluate(self, step: int) -> dict:
        if self.monitor is None:
            return {}
        data = self.config.Data
        return {"knn_top1": self.monitor.accuracy(self.model, self.tokenizer, data.max_seq_len, data.eval_batch_size)}

    def write_weights(self, directory: Path, training: bool) -> None:
        encoder = self.model.encoder
        encoder.config.save_pretrained(str(directory))
        # PaddleNLP from_pretrained reads the "format" metadata of the file
        save_file(state_to_numpy(encoder), str(directory / ENCODER_WEIGHTS), metadata={"format": "np"})
        if self.model.projection is not None:
            save_file(state_to_numpy(self.model.projection), str(directory / PROJECTION_WEIGHTS))
        self.base_tokenizer.save(directory)

    def restore_weights(self, directory: Path) -> None:
        load_weights(self.model.encoder, directory / ENCODER_WEIGHTS)
        if self.model.projection is not None:
            load_weights(self.model.projection, directory / PROJECTION_WEIGHTS)

    def summary(self, out: Path, best_step: Optional[int]) -> dict:
        return {"method": "simcse"}
