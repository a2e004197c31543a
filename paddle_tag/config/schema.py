"""The config schema: every key paddle_tag understands, with its type and default.

One dataclass per YAML section. A key exists only if it is a field here, so the loader can reject
unknown keys and name the closest valid one. ``Literal`` types list the allowed values; ``Optional``
allows ``null``. Keep fields flat (no nested dataclasses inside a section) so every key is
``Section.key`` and maps to one line of code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union


@dataclass
class GlobalConfig:
    """Run-wide settings: where outputs go, how long to train, on what device."""

    output_dir: str = "output/run"
    epochs: int = 3
    max_steps: int = -1  # stop after this many optimizer steps (smoke runs); -1 = no limit
    seed: int = 42
    device: Literal["cpu", "gpu"] = "cpu"
    checkpoint: Optional[str] = None  # a checkpoint directory to evaluate / predict from
    resume: Union[bool, str] = False  # true: continue from <output_dir>/last; a path: from there
    amp: Optional[Literal["O1", "O2"]] = None  # mixed precision, GPU only
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    eval_every: int = 0  # evaluate every N steps; 0 = at the end of each epoch
    log_every: int = 20  # one progress-bar postfix update every N steps
    progress: bool = True  # show tqdm progress bars


@dataclass
class DataConfig:
    """Where the examples are and how they are turned into model inputs."""

    task: Literal["multi_class", "multi_label"] = "multi_class"
    train_path: Optional[str] = None
    eval_path: Optional[str] = None
    test_path: Optional[str] = None
    format: Literal["auto", "jsonl", "tsv"] = "auto"  # auto: by file extension
    max_seq_len: int = 128
    batch_size: int = 32
    eval_batch_size: int = 64
    on_long_text: Literal["truncate", "error"] = "truncate"
    text_prefix: str = ""  # put before every text by the tokenizer (e5 models want "query: ")


@dataclass
class ModelConfig:
    """The encoder (pretrained or built from the size keys below) and the tagging head."""

    name: Literal["ernie", "bert"] = "ernie"  # encoder family; e5 models are "bert"
    pretrained: Optional[str] = None  # a local directory, a name in the models cache, or a PaddleNLP hub name
    prune_vocab: bool = False  # keep only the pretrained vocabulary's pieces the training texts use
    vocab_file: Optional[str] = None  # WordPiece vocab for random init (pretrained models bring their own)
    num_layers: int = 4
    hidden_size: int = 256
    num_heads: int = 4
    intermediate_size: int = 1024
    max_position: int = 512
    dropout: float = 0.1
    pooling: Literal["cls", "mean"] = "cls"
    head_dropout: float = 0.1
    # prior: the head's bias starts at the training labels' log-odds (multi-label) or log-frequencies
    # (multi-class), so the first steps learn to tell texts apart instead of pushing every score down
    head_bias_init: Literal["zeros", "prior"] = "prior"


@dataclass
class LossConfig:
    """Training objective; ``auto`` picks cross-entropy or BCE from ``Data.task``."""

    name: Literal["auto", "ce", "bce"] = "auto"
    label_smoothing: float = 0.0  # cross-entropy only


@dataclass
class OptimizerConfig:
    """AdamW with linear warmup and linear decay, and global-norm gradient clipping."""

    name: Literal["adamw"] = "adamw"
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0  # 0 disables clipping
    head_lr_scale: float = 1.0  # the classifier head learns at lr * head_lr_scale (a new head starts from nothing)
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8


@dataclass
class MetricConfig:
    """How evaluation picks the best checkpoint and the per-class thresholds."""

    best: str = "auto"  # metric that selects best/: auto = macro_f1 (multi_class) / micro_f1 (multi_label)
    tune_thresholds: bool = True  # multi-label: per-class thresholds tuned on the eval set
    default_threshold: float = 0.5


@dataclass
class ExportConfig:
    """ONNX export (``tools/export_model.py``): what is written, and how it is checked against Paddle."""

    output_dir: str = "output/export"
    opset: int = 13  # ONNX opset handed to paddle2onnx
    variants: str = "fp32,fp16,int8"  # comma list of fp32 (required), fp16, int8
    parity_samples: int = 256  # real samples from Data.eval_path run through Paddle and ONNX Runtime
    fp32_atol: float = 1e-4  # largest |logit difference| FP32 ONNX may show; above it the export is refused
    max_seq_len: Optional[int] = None  # tokenizer truncation length; null = Data.max_seq_len
    int8_keep_fp32: Literal["none", "ffn_out"] = "none"  # ffn_out: feed-forward output MatMuls stay FP32


@dataclass
class Config:
    """A whole run's configuration; the YAML sections map one-to-one onto these fields."""

    Global: GlobalConfig = field(default_factory=GlobalConfig)
    Data: DataConfig = field(default_factory=DataConfig)
    Model: ModelConfig = field(default_factory=ModelConfig)
    Loss: LossConfig = field(default_factory=LossConfig)
    Optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    Metric: MetricConfig = field(default_factory=MetricConfig)
    Export: ExportConfig = field(default_factory=ExportConfig)
