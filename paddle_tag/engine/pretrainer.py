"""Contrastive text pretraining (SimCSE): two views of each text, InfoNCE, a kNN monitor, resumable.

A step takes a batch of raw texts, makes two views of each (the augmentations of ``Pretrain.*``, drawn
from an RNG seeded by ``(seed, step)``; with none, the views differ only by dropout, which is
unsupervised SimCSE), runs both through the model in one forward pass and applies InfoNCE: view 1 of
text *i* must pick view 2 of text *i* among the views 2 of the whole (cross-rank gathered) batch.

Evaluation embeds the kNN monitor's labelled texts with the frozen encoder (pooled, L2-normalised)
and reports the weighted-kNN top-1 accuracy; the best one is kept in ``best/``. Both ``best/`` and
``last/`` are model directories that ``Model.pretrained`` loads (see :mod:`.pretrain_checkpoint`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import paddle
from tqdm.auto import tqdm

from paddle_tag.config import Config, save_config
from paddle_tag.data.dataset import epoch_order
from paddle_tag.data.tokenizer import TextTokenizer, encode_texts, pad_batch
from paddle_tag.engine.checkpoint import resume_checkpoint
from paddle_tag.engine.embedder import Embedder
from paddle_tag.engine.loop import new_state, optimizer_step, record_monitor_eval, run_epochs
from paddle_tag.engine.optim import build_optimizer
from paddle_tag.engine.plots import plot_curves
from paddle_tag.engine.pretrain_checkpoint import restore_pretraining, save_pretrain_checkpoint
from paddle_tag.engine.runtime import Runtime
from paddle_tag.errors import ConfigError
from paddle_tag.metrics.knn import knn_accuracy
from paddle_tag.models.contrastive import ContrastiveTextModel
from paddle_tag.utils.io import atomic_write_json

Augment = Callable[[str, np.random.Generator], str]


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


class Pretrainer:
    """Fits a :class:`ContrastiveTextModel` on unlabeled texts; writes ``best/``, ``last/``, curves."""

    def __init__(self, config: Config, runtime: Runtime, model: ContrastiveTextModel, loss_fn: paddle.nn.Layer,
                 tokenizer: TextTokenizer, base_tokenizer: TextTokenizer, texts: Sequence[str],
                 augment: Optional[Augment] = None, monitor: Optional[KnnMonitor] = None) -> None:
        self.config, self.runtime = config, runtime
        self.model, self.loss_fn, self.tokenizer = model, loss_fn, tokenizer
        self.base_tokenizer = base_tokenizer  # saved without Data.text_prefix
        self.texts, self.augment, self.monitor = list(texts), augment, monitor
        self.out = Path(config.Global.output_dir)
        self.steps_per_epoch = len(self._epoch_batches(0))
        if self.steps_per_epoch == 0:
            raise ConfigError(f"no full training batch: {len(self.texts)} texts, Data.batch_size="
                              f"{config.Data.batch_size}, {runtime.world_size} worker(s)")
        total = config.Global.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.Global.max_steps) if config.Global.max_steps > 0 else total
        self.optimizer, self.scheduler = build_optimizer(config.Optimizer, model, self.total_steps)
        if runtime.amp_level == "O2":
            model, self.optimizer = paddle.amp.decorate(models=model, optimizers=self.optimizer, level="O2",
                                                        dtype=runtime.amp_dtype, master_weight=True)
            self.model = model
        self.scaler = runtime.grad_scaler()
        self.parallel_model = paddle.DataParallel(model) if runtime.world_size > 1 else model
        self.state = new_state()

    def fit(self) -> dict:
        """Pretrain to ``Global.epochs`` (or ``Global.max_steps``); return the contents of ``metrics.json``."""
        if self.runtime.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out / "config.yaml")
        self._maybe_resume()
        self.model.train()
        run_epochs(self.state, self.config.Global, self.total_steps, batches_for_epoch=self._epoch_batches,
                   train_step=self._train_step, evaluate=self._evaluate_and_save,
                   current_lr=self.scheduler.get_lr, show_progress=self.runtime.is_main)
        result = {"method": self.config.Pretrain.method, "steps": self.state["global_step"],
                  "train_time_s": round(self.state["train_time_s"], 2), "best_step": self.state["best_step"],
                  "best": self.state["best"], "samples_per_s": self._samples_per_second()}
        if self.runtime.is_main:
            atomic_write_json(self.out / "metrics.json", result)
        return result

    # -- steps --------------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        # full batches only: every rank must gather the same number of negatives
        return epoch_order(len(self.texts), self.config.Data.batch_size, self.config.Global.seed, epoch,
                           rank=self.runtime.rank, world_size=self.runtime.world_size, drop_last=True)

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

    def _train_step(self, indices: np.ndarray, step: int) -> float:
        paddle.seed(self.config.Global.seed * 1_000_003 + step)  # dropout noise is part of the recipe
        input_ids = paddle.to_tensor(self.views(indices, step))
        with self.runtime.autocast():
            embeddings = self.parallel_model(input_ids)
        first, second = embeddings.astype("float32").chunk(2, axis=0)
        loss = self.loss_fn(first, second)
        return optimizer_step(loss, self.optimizer, self.scheduler, self.scaler, step)

    def _evaluate_and_save(self, step: int) -> None:
        data = self.config.Data
        knn = None if self.monitor is None else self.monitor.accuracy(self.model, self.tokenizer, data.max_seq_len,
                                                                      data.eval_batch_size)
        metrics, improved = record_monitor_eval(self.state, step, self.steps_per_epoch, self.total_steps, knn)
        if not self.runtime.is_main:
            return
        common = dict(model=self.model, tokenizer=self.base_tokenizer, config=self.config, metrics=metrics)
        if improved:
            save_pretrain_checkpoint(self.out / "best", **common)
        save_pretrain_checkpoint(self.out / "last", **common, optimizer=self.optimizer, trainer_state=self.state)
        plot_curves(self.state["history"], self.out / "curves.png",
                    metric_keys=("knn_top1",) if self.monitor is not None else ())

    def _samples_per_second(self) -> Optional[float]:
        seconds = self.state["train_time_s"]
        if not seconds:
            return None
        done = self.state["global_step"] * self.config.Data.batch_size * self.runtime.world_size
        return round(done / seconds, 2)

    def _maybe_resume(self) -> None:
        path = resume_checkpoint(self.config.Global.resume, self.out)
        if path is None:
            return
        self.state.update(restore_pretraining(path, self.model, self.optimizer))
        tqdm.write(f"[resume] from {path} at step {self.state['global_step']} (epoch {self.state['epoch'] + 1})")
