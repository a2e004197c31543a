""""Did you mean …?" for unknown config keys, including the names users bring from other tools.

Spelling slips (``Optimizer.lrr``, ``global.seed``) are caught by :func:`difflib.get_close_matches`; names
from Hugging Face ``TrainingArguments``, PyTorch Lightning, PaddleClas or Keras (``learning_rate``,
``num_train_epochs``, ``per_device_train_batch_size``…) are too far from ours for that, and difflib would
answer ``Optimizer.learning_rate`` with ``Optimizer.warmup_ratio``. :data:`ALIASES` maps those names, in any
section, to the key that means the same here; it is consulted first.
"""
from __future__ import annotations

import difflib
import re
from typing import Sequence

#: a key name from another tool (lower case, without its section) → the paddle_tag key with that meaning
ALIASES: dict[str, str] = {
    # learning rate and optimizer
    "learning_rate": "Optimizer.lr", "learningrate": "Optimizer.lr", "base_lr": "Optimizer.lr",
    "lr_rate": "Optimizer.lr", "init_lr": "Optimizer.lr", "max_lr": "Optimizer.lr", "peak_lr": "Optimizer.lr",
    "warmup": "Optimizer.warmup_ratio", "warmup_steps": "Optimizer.warmup_ratio",
    "warmup_epochs": "Optimizer.warmup_ratio", "warmup_proportion": "Optimizer.warmup_ratio",
    "adam_beta1": "Optimizer.beta1", "adam_beta2": "Optimizer.beta2", "adam_epsilon": "Optimizer.epsilon",
    "eps": "Optimizer.epsilon", "wd": "Optimizer.weight_decay", "decay": "Optimizer.weight_decay",
    "clip_grad_norm": "Optimizer.max_grad_norm", "gradient_clip_val": "Optimizer.max_grad_norm",
    "grad_clip": "Optimizer.max_grad_norm", "clip_norm": "Optimizer.max_grad_norm",
    "optimizer": "Optimizer.name", "optim": "Optimizer.name",
    # length of training
    "epoch": "Global.epochs", "num_epochs": "Global.epochs", "n_epochs": "Global.epochs",
    "max_epochs": "Global.epochs", "num_train_epochs": "Global.epochs", "train_epochs": "Global.epochs",
    "steps": "Global.max_steps", "num_steps": "Global.max_steps", "train_steps": "Global.max_steps",
    "max_iters": "Global.max_steps", "iters": "Global.max_steps",
    # batches and sequence length
    "batch": "Data.batch_size", "bs": "Data.batch_size", "batchsize": "Data.batch_size",
    "train_batch_size": "Data.batch_size", "per_device_train_batch_size": "Data.batch_size",
    "batch_size_per_card": "Data.batch_size", "per_device_eval_batch_size": "Data.eval_batch_size",
    "val_batch_size": "Data.eval_batch_size", "test_batch_size": "Data.eval_batch_size",
    "max_length": "Data.max_seq_len", "max_len": "Data.max_seq_len", "seq_len": "Data.max_seq_len",
    "max_seq_length": "Data.max_seq_len", "max_sequence_length": "Data.max_seq_len",
    "sequence_length": "Data.max_seq_len", "block_size": "Data.max_seq_len",
    "prefix": "Data.text_prefix",
    # data files
    "train_file": "Data.train_path", "train_data": "Data.train_path",
    "train_dataset": "Data.train_path", "validation_file": "Data.eval_path", "valid_path": "Data.eval_path",
    "val_path": "Data.eval_path", "dev_path": "Data.eval_path", "dev_file": "Data.eval_path",
    "eval_file": "Data.eval_path", "eval_data": "Data.eval_path", "valid_file": "Data.eval_path",
    "test_file": "Data.test_path", "test_data": "Data.test_path",
    # run-wide
    "output": "Global.output_dir", "out_dir": "Global.output_dir", "save_dir": "Global.output_dir",
    "output_path": "Global.output_dir", "save_path": "Global.output_dir", "work_dir": "Global.output_dir",
    "random_seed": "Global.seed", "manual_seed": "Global.seed",
    "use_gpu": "Global.device", "gpu": "Global.device", "gpus": "Global.device", "accelerator": "Global.device",
    "fp16": "Global.amp", "bf16": "Global.amp", "mixed_precision": "Global.amp", "use_amp": "Global.amp",
    "amp_level": "Global.amp", "precision": "Global.amp",
    "eval_steps": "Global.eval_every", "eval_interval": "Global.eval_every", "save_steps": "Global.eval_every",
    "val_check_interval": "Global.eval_every", "logging_steps": "Global.log_every",
    "log_interval": "Global.log_every", "print_freq": "Global.log_every",
    "resume_from_checkpoint": "Global.resume", "checkpoints": "Global.checkpoint", "ckpt": "Global.checkpoint",
    # model
    "model": "Model.name", "arch": "Model.name", "model_type": "Model.name",
    "model_name_or_path": "Model.pretrained", "pretrained_model_name_or_path": "Model.pretrained",
    "model_name": "Model.pretrained", "init_from": "Model.pretrained",
    "pretrained_model": "Model.pretrained", "from_pretrained": "Model.pretrained",
    "num_hidden_layers": "Model.num_layers", "n_layers": "Model.num_layers", "layers": "Model.num_layers",
    "num_attention_heads": "Model.num_heads", "n_heads": "Model.num_heads", "heads": "Model.num_heads",
    "hidden_dim": "Model.hidden_size", "d_model": "Model.hidden_size", "dim": "Model.hidden_size",
    "ffn_dim": "Model.intermediate_size", "max_position_embeddings": "Model.max_position",
    "hidden_dropout_prob": "Model.dropout", "dropout_rate": "Model.dropout", "drop_rate": "Model.dropout",
    "classifier_dropout": "Model.head_dropout",
    # loss and metrics
    "loss": "Loss.name", "smoothing": "Loss.label_smoothing", "label_smooth": "Loss.label_smoothing",
    "metric": "Metric.best", "metric_for_best_model": "Metric.best", "threshold": "Metric.default_threshold",
}


def _normalise(name: str) -> str:
    """``maxLength`` / ``max-length`` / ``MAX_LENGTH`` → ``max_length``."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return name.replace("-", "_").lower()


def alias_for(dotted: str, valid: Sequence[str]) -> str | None:
    """The key of ``valid`` that the (unknown) key ``dotted`` most likely means, when its name is one that another
    tool uses for it, or the same name in another section (``Optimizer.epochs`` → ``Global.epochs``); ``None``
    otherwise."""
    section, _, name = dotted.rpartition(".")
    name = _normalise(name)
    same_name = [k for k in valid if k.rpartition(".")[2] == name]
    in_section = [k for k in same_name if k.split(".")[0].lower() == section.lower()]
    if in_section:  # only the case of the section was wrong ("optimizer.lr")
        return in_section[0]
    target = ALIASES.get(name)
    if target in valid:
        return target
    return same_name[0] if same_name else None


def suggest(name: str, candidates: Sequence[str]) -> str:
    """`` (did you mean X?)`` for the closest candidate, or ``""``: another tool's name first, then a close
    spelling, then the same name in other letter case."""
    candidates = list(candidates)
    close = []
    if all("." in c for c in candidates) and name not in candidates:
        alias = alias_for(name, candidates)
        close = [alias] if alias else []
    close = close or difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    if not close:  # case slips ("global.seed") are common and beat the ratio cut-off
        close = [c for c in candidates if c.lower() == name.lower()]
    return f" (did you mean {close[0]}?)" if close else ""
