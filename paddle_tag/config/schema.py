"""The config schema: every key paddle_tag understands, with its type and default.

One dataclass per YAML section. A key exists only if it is a field here, so the loader can reject
unknown keys and name the closest valid one. ``Literal`` types list the allowed values; ``Optional``
allows ``null``. Keep fields flat (no nested dataclasses inside a section) so every key is
``Section.key`` and maps to one line of code.

Each section checks its own value ranges in ``__post_init__``, so a bad value fails as soon as the config
is loaded, with the key in the message; checks that span sections are in :mod:`paddle_tag.config.validate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from paddle_tag.config.discover_schema import DiscoverConfig
from paddle_tag.config.recommend_schema import SEQUENCE_MODELS, TWO_TOWER_MODELS, RecommendConfig
from paddle_tag.errors import ConfigError

# The allowed names are defined here once: the ``Literal`` types below, the cross-section checks and the
# backbone table of paddle_tag.models.backbones are built from these tuples.
#: Model.name values that are text encoder families (e5 models are "bert")
TEXT_ENCODERS = ("ernie", "bert")
#: Model.name values that are image backbones: the lower-cased names of PaddleClas constructors
IMAGE_BACKBONES = ("resnet18", "mobilenetv3_small_x0_35", "pplcnet_x0_25")
#: Pretrain.method values for text / for images (Data.modality)
TEXT_METHODS, IMAGE_METHODS = ("simcse",), ("simclr", "moco")
#: smallest Data.image_size; paddle_tag.data.images imports it and refuses smaller sizes too
MIN_IMAGE_SIZE = 8
#: Export.variants values, in the order they are built (fp32 first: the others derive from it)
EXPORT_VARIANTS = ("fp32", "fp16", "int8")
#: Export.opset range that paddle2onnx 2.1 and onnxruntime 1.32 both handle for the tagger graph
MIN_OPSET, MAX_OPSET = 13, 19


@dataclass
class GlobalConfig:
    """Run-wide settings: where outputs go, how long to train, on what device."""

    output_dir: str = "output/run"  # where the run writes checkpoints (best/, last/), metrics, curves and its config
    epochs: int = 3  # passes over the training data
    max_steps: int = -1  # stop after this many optimizer steps (smoke runs); -1 = no limit
    seed: int = 42  # seeds init, batch order, dropout and augmentations (runs are deterministic on CPU)
    device: Literal["cpu", "gpu"] = "cpu"  # gpu needs the Paddle GPU build (docs: Docker and multi-GPU)
    checkpoint: Optional[str] = None  # a checkpoint directory to evaluate / predict from
    resume: Union[bool, str] = False  # true: continue from <output_dir>/last; a path: from there
    amp: Optional[Literal["O1", "O2"]] = None  # mixed precision, GPU only
    amp_dtype: Literal["float16", "bfloat16"] = "float16"  # float16 trains with a GradScaler
    eval_every: int = 0  # evaluate every N steps (and after each epoch); 0 = after each epoch; -1 = only at the end
    log_every: int = 20  # one progress-bar postfix update every N steps
    progress: bool = True  # show tqdm progress bars

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ConfigError(f"Global.epochs must be positive, got {self.epochs}")
        if self.eval_every < -1:
            raise ConfigError(f"Global.eval_every must be >= -1 (-1: only at the end), got {self.eval_every}")
        if self.log_every <= 0:
            raise ConfigError(f"Global.log_every must be positive, got {self.log_every}")


@dataclass
class DataConfig:
    """Where the examples are and how they are turned into model inputs."""

    task: Literal["multi_class", "multi_label"] = "multi_class"  # softmax CE or sigmoid BCE, metrics, thresholds
    train_path: Optional[str] = None  # training examples: JSONL {"text", "labels"} or TSV label<TAB>text
    eval_path: Optional[str] = None  # dev split: evaluation during training, best/ and thresholds are chosen on it
    test_path: Optional[str] = None  # optional held-out split, scored once with best/ at the end (metrics.json)
    format: Literal["auto", "jsonl", "tsv"] = "auto"  # auto: by file extension
    max_seq_len: int = 128  # tokens a model input holds, [CLS]/[SEP] (or <s>/</s>) included
    batch_size: int = 32  # training examples per step, per device
    eval_batch_size: int = 64  # examples per batch when evaluating and predicting
    # a text over max_seq_len tokens: cut to fit (truncate), refused (error), or read whole as overlapping
    # windows of max_seq_len tokens whose pooled features the model pools per text (windows)
    on_long_text: Literal["truncate", "windows", "error"] = "truncate"
    window_overlap: int = 32  # windows: tokens each window shares with the one before (tokenizers' "stride")
    max_windows: int = 16  # windows: a text is read up to this many windows; longer texts are cut (and counted)
    text_prefix: str = ""  # put before every text by the tokenizer (e5 models want "query: ")
    # image: the *_path keys are .npz files (python tools/prepare_data.py fashion_mnist fashion_mosaic);
    # sequence: train_path is an interaction log folder (python tools/prepare_data.py movielens_1m)
    modality: Literal["text", "image", "sequence"] = "text"
    image_size: int = 32  # images are resized to image_size × image_size (>= MIN_IMAGE_SIZE)

    def __post_init__(self) -> None:
        for key in ("batch_size", "eval_batch_size", "max_seq_len"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"Data.{key} must be positive, got {getattr(self, key)}")
        if self.image_size < MIN_IMAGE_SIZE:
            raise ConfigError(f"Data.image_size must be >= {MIN_IMAGE_SIZE}, got {self.image_size}")
        if self.max_windows < 1:
            raise ConfigError(f"Data.max_windows must be >= 1, got {self.max_windows}")
        if self.window_overlap < 0:
            raise ConfigError(f"Data.window_overlap must be >= 0, got {self.window_overlap}")
        # a window holds max_seq_len - 2 text tokens (the rest are [CLS]/[SEP]); consecutive windows must advance
        if self.on_long_text == "windows" and self.window_overlap > self.max_seq_len - 3:
            raise ConfigError(f"Data.window_overlap={self.window_overlap} leaves windows that do not advance: it "
                              f"must be at most Data.max_seq_len - 3 = {self.max_seq_len - 3}")


@dataclass
class ModelConfig:
    """The encoder (pretrained or built from the size keys below) and the tagging head."""

    # a text encoder family (TEXT_ENCODERS), an image backbone (IMAGE_BACKBONES, Data.modality=image) or a
    # sequence or two-tower model (SEQUENCE_MODELS, TWO_TOWER_MODELS; Data.modality=sequence); the loader
    # evaluates this hint at runtime, so the Literal is built from the tuples above
    name: Literal[TEXT_ENCODERS + IMAGE_BACKBONES + SEQUENCE_MODELS + TWO_TOWER_MODELS] = "ernie"
    pretrained: Optional[str] = None  # a local directory, a name in the models cache, or a PaddleNLP hub name
    prune_vocab: bool = False  # keep only the pretrained vocabulary's pieces the training texts use
    vocab_file: Optional[str] = None  # WordPiece vocab for random init (pretrained models bring their own)
    num_layers: int = 4  # random init only (a pretrained encoder brings its own size): transformer layers
    hidden_size: int = 256  # random init: hidden size
    num_heads: int = 4  # random init: attention heads
    intermediate_size: int = 1024  # random init: feed-forward size
    max_position: int = 512  # random init: position embeddings (Data.max_seq_len must fit)
    dropout: float = 0.1  # encoder dropout
    pooling: Literal["cls", "mean"] = "cls"  # the pooled embedding (forward_features): [CLS] or masked mean
    head_dropout: float = 0.1  # dropout before the tagging head
    # prior: the head's bias starts at the training labels' log-odds (multi-label) or log-frequencies
    # (multi-class), so the first steps learn to tell texts apart instead of pushing every score down
    head_bias_init: Literal["zeros", "prior"] = "prior"
    # tag_names: each tag's head row starts as the encoder's embedding of the tag's name (a zero-shot prior)
    head_init: Literal["random", "tag_names"] = "random"
    window_pooling: Literal["max", "mean", "attention"] = "max"  # how a text's window features become one
    # the encoder is not trained: each window is embedded once (cached on disk, keyed by model + data) and only
    # the window pooling, the wide part and the head learn — minutes on CPU instead of hours
    freeze_encoder: bool = False
    feature_cache: Optional[str] = None  # where frozen window features are cached; null = ~/.cache/paddle_tag/features
    # wide & deep: hashed character n-grams (1..wide_ngram_max characters) → one logit per tag, added to the
    # encoder head's logits and trained with it (the hashing runs inside the model, so the export computes it too)
    wide: bool = False
    wide_ngram_max: int = 2  # the wide part reads character n-grams of 1..wide_ngram_max characters (1..5)
    wide_buckets: int = 262144  # hash buckets (rows of the n-gram table); each row holds one weight per tag
    wide_max_chars: int = 4096  # the wide part reads at most this many characters of a text
    wide_idf: bool = False  # weigh each n-gram by its inverse document frequency in the training texts (TF-IDF)

    def __post_init__(self) -> None:
        if not 1 <= self.wide_ngram_max <= 5:
            raise ConfigError(f"Model.wide_ngram_max must be 1..5 (n-grams of 1..n characters), "
                              f"got {self.wide_ngram_max}")
        if self.wide_buckets < 2:
            raise ConfigError(f"Model.wide_buckets must be >= 2, got {self.wide_buckets}")
        if self.wide_max_chars < 1:
            raise ConfigError(f"Model.wide_max_chars must be >= 1, got {self.wide_max_chars}")


@dataclass
class LossConfig:
    """Training objective; ``auto`` picks cross-entropy or BCE from ``Data.task``."""

    # asl: asymmetric loss (Ridnik et al. 2021), focal: focal loss (Lin et al. 2017); both multi-label (sigmoid)
    name: Literal["auto", "ce", "bce", "asl", "focal"] = "auto"
    label_smoothing: float = 0.0  # cross-entropy only
    gamma_neg: float = 4.0  # asl: focusing exponent of the negatives (down-weights easy negatives)
    gamma_pos: float = 0.0  # asl: focusing exponent of the positives
    clip: float = 0.05  # asl: probability margin shifted off the negatives (very easy negatives count zero)
    gamma: float = 2.0  # focal: focusing exponent of positives and negatives alike

    def __post_init__(self) -> None:
        for key in ("gamma_neg", "gamma_pos", "gamma"):
            if getattr(self, key) < 0:
                raise ConfigError(f"Loss.{key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= self.clip < 1:
            raise ConfigError(f"Loss.clip must be in [0, 1), got {self.clip}")


@dataclass
class OptimizerConfig:
    """AdamW with linear warmup and linear decay, and global-norm gradient clipping."""

    name: Literal["adamw"] = "adamw"  # AdamW, no decay on biases and LayerNorm
    lr: float = 5e-5  # peak learning rate (linear warmup, then linear decay to 0)
    weight_decay: float = 0.01  # decoupled weight decay (not on biases and LayerNorm)
    warmup_ratio: float = 0.1  # share of the steps spent warming up, in [0, 1)
    max_grad_norm: float = 1.0  # 0 disables clipping
    head_lr_scale: float = 1.0  # the classifier head learns at lr * head_lr_scale (a new head starts from nothing)
    # SGD rate of the wide part's n-gram table, for the loss summed over a batch's cells (fastText's are 0.1-1);
    # it follows the warmup/decay schedule (see paddle_tag/engine/optim.py). 3 was best on dev among 1, 3, 10
    # (docs/long_tail_poems_2026-12.md) and is what every wide recipe in configs/ uses
    wide_lr: float = 3.0
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.999  # AdamW second-moment decay
    epsilon: float = 1e-8  # AdamW denominator term

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"Optimizer.lr must be positive, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"Optimizer.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for key in ("head_lr_scale", "wide_lr"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"Optimizer.{key} must be positive, got {getattr(self, key)}")


@dataclass
class MetricConfig:
    """How evaluation picks the best checkpoint and the per-class thresholds."""

    best: str = "auto"  # metric that selects best/: auto = macro_f1 (multi_class) / micro_f1 (multi_label)
    tune_thresholds: bool = True  # multi-label: per-class thresholds tuned on the eval set
    default_threshold: float = 0.5  # multi-label score threshold where none is tuned


@dataclass
class ExportConfig:
    """ONNX export (``tools/export_model.py``): what is written, and how it is checked against Paddle."""

    output_dir: str = "output/export"  # export directory, replaced atomically (must be an export or absent)
    opset: int = 13  # ONNX opset handed to paddle2onnx (MIN_OPSET..MAX_OPSET)
    # which of EXPORT_VARIANTS to build; fp32 is required. -o gives a comma string (fp32,int8), kept in order
    variants: list[str] = field(default_factory=lambda: list(EXPORT_VARIANTS))
    parity_samples: int = 256  # real samples from Data.eval_path run through Paddle and ONNX Runtime
    fp32_atol: float = 1e-4  # largest |logit difference| FP32 ONNX may show; above it the export is refused
    max_seq_len: Optional[int] = None  # tokenizer truncation length; null = Data.max_seq_len
    int8_keep_fp32: Literal["none", "ffn_out"] = "none"  # ffn_out: feed-forward output MatMuls stay FP32

    def __post_init__(self) -> None:
        given = self.variants
        items = [given] if isinstance(given, str) else given  # ExportConfig(variants="fp32,int8") works too
        names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
        unknown = [n for n in names if n not in EXPORT_VARIANTS]
        if unknown:
            raise ConfigError(f"Export.variants: unknown variant(s) {unknown}; "
                              f"choose from {', '.join(EXPORT_VARIANTS)}")
        if "fp32" not in names:
            raise ConfigError(f"Export.variants must include fp32 (the reference model), got {given!r}")
        self.variants = [v for v in EXPORT_VARIANTS if v in names]  # build order, no repeats
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ConfigError(f"Export.opset={self.opset} must be between {MIN_OPSET} and {MAX_OPSET}")
        if self.fp32_atol < 0:
            raise ConfigError(f"Export.fp32_atol must be >= 0, got {self.fp32_atol}")
        if self.parity_samples <= 0:
            raise ConfigError(f"Export.parity_samples must be positive, got {self.parity_samples}")


@dataclass
class PretrainConfig:
    """Contrastive pretraining: ``tools/train.py`` pretrains instead of fine-tuning when ``method`` is set.

    ``simcse``: two views of each text differ by dropout (and by the augmentations below when their
    probabilities are above 0); InfoNCE with in-batch negatives, gathered across data-parallel ranks.
    ``simclr`` / ``moco`` (``Data.modality: image``): two augmented views of each image, NT-Xent with
    in-batch negatives / InfoNCE against a momentum encoder's keys and a queue of negatives (MoCo v2 uses
    temperature 0.2); see :mod:`paddle_tag.engine.tasks.moco`.
    """

    method: Optional[Literal[TEXT_METHODS + IMAGE_METHODS]] = None  # simcse: text; simclr / moco (v2): images
    temperature: float = 0.05  # SimCSE's value
    projection_layers: int = 1  # MLP layers of the projection head; 0 = the loss sees the pooled embedding
    projection_hidden: int = 0  # hidden size of a multi-layer head; 0 = the encoder's hidden size
    projection_dim: int = 0  # output size; 0 = the encoder's hidden size
    # probability that each augmentation is applied to a view (0 = off); word-level ones use jieba words
    word_deletion: float = 0.0  # probability: delete jieba words
    word_swap: float = 0.0  # probability: swap jieba words
    synonym_replace: float = 0.0  # probability: replace words by synonyms (needs synonyms_path)
    char_mask: float = 0.0  # probability: mask characters with the tokenizer's mask token
    synonyms_path: Optional[str] = None  # tab-separated synonym groups (python tools/prepare_data.py synonyms)
    # kNN monitor: labelled texts (or single-label .npz images) embedded with the frozen encoder at every evaluation
    knn_train_path: Optional[str] = None  # memory bank
    knn_eval_path: Optional[str] = None  # queries; top-1 accuracy is the metric that selects best/
    knn_k: int = 20  # kNN monitor: neighbours that vote
    knn_temperature: float = 0.07  # kNN monitor: votes weighted by exp(cosine / knn_temperature)
    knn_max_items: int = 0  # images: at most this many bank and query images (fixed-seed sample); 0 = all
    # MoCo v2 (images): a FIFO of past keys as negatives, a momentum (EMA) key encoder, shuffled split BatchNorm
    queue_size: int = 4096  # negatives kept in the queue
    momentum: float = 0.99  # EMA rate of the key encoder
    bn_splits: int = 4  # sub-batches with their own BatchNorm statistics (single-device shuffle-BN), MoCo only

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"Pretrain.temperature must be positive, got {self.temperature}")
        if self.projection_layers < 0 or self.projection_hidden < 0 or self.projection_dim < 0:
            raise ConfigError("Pretrain.projection_layers / projection_hidden / projection_dim must be >= 0")
        for name in ("word_deletion", "word_swap", "synonym_replace", "char_mask"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise ConfigError(f"Pretrain.{name} is a probability in [0, 1], got {p}")
        if self.knn_max_items < 0 or self.knn_k < 1 or self.knn_temperature <= 0:
            raise ConfigError("Pretrain.knn_max_items must be >= 0, knn_k >= 1 and knn_temperature > 0")
        if self.method == "moco":  # the MoCo keys mean nothing to the other methods: their defaults stay unchecked
            if self.queue_size < 1 or not 0.0 <= self.momentum <= 1.0:
                raise ConfigError(f"MoCo needs Pretrain.queue_size >= 1 and Pretrain.momentum in [0, 1], got "
                                  f"{self.queue_size} and {self.momentum}")
            if self.bn_splits < 1:  # whether it divides Data.batch_size is checked by config.validate
                raise ConfigError(f"MoCo needs Pretrain.bn_splits >= 1, got {self.bn_splits}")


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
    Pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    Discover: DiscoverConfig = field(default_factory=DiscoverConfig)
    Recommend: RecommendConfig = field(default_factory=RecommendConfig)
