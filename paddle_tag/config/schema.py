"""The config schema: every key paddle_tag understands, with its type and default.

One dataclass per YAML section. A key exists only if it is a field here, so the loader can reject
unknown keys and name the closest valid one. ``Literal`` types list the allowed values; ``Optional``
allows ``null``. Keep fields flat (no nested dataclasses inside a section) so every key is
``Section.key`` and maps to one line of code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from paddle_tag.errors import ConfigError

#: Model.name values that are image backbones (keys of paddle_tag.models.backbones.BACKBONES)
IMAGE_BACKBONES = ("resnet18", "mobilenetv3_small_x0_35", "pplcnet_x0_25")


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
    eval_every: int = 0  # evaluate every N steps (and after each epoch); 0 = after each epoch; -1 = only at the end
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
    # a text over max_seq_len tokens: cut to fit (truncate), refused (error), or read whole as overlapping
    # windows of max_seq_len tokens whose pooled features the model pools per text (windows)
    on_long_text: Literal["truncate", "windows", "error"] = "truncate"
    window_overlap: int = 32  # windows: tokens each window shares with the one before (tokenizers' "stride")
    max_windows: int = 16  # windows: a text is read up to this many windows; longer texts are cut (and counted)
    text_prefix: str = ""  # put before every text by the tokenizer (e5 models want "query: ")
    # image: the *_path keys are .npz files (python tools/prepare_data.py fashion_mnist fashion_mosaic)
    modality: Literal["text", "image"] = "text"
    image_size: int = 32  # images are resized to image_size × image_size (>= 8)

    def __post_init__(self) -> None:
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

    # text encoder family (e5 models are "bert"), or an image backbone (Data.modality=image), see IMAGE_BACKBONES
    name: Literal["ernie", "bert", "resnet18", "mobilenetv3_small_x0_35", "pplcnet_x0_25"] = "ernie"
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
    wide_ngram_max: int = 2
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

    name: Literal["adamw"] = "adamw"
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0  # 0 disables clipping
    head_lr_scale: float = 1.0  # the classifier head learns at lr * head_lr_scale (a new head starts from nothing)
    # SGD rate of the wide part's n-gram table, for the loss summed over a batch's cells (fastText's are 0.1-1);
    # it follows the warmup/decay schedule (see paddle_tag/engine/optim.py)
    wide_lr: float = 1.0
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
class PretrainConfig:
    """Contrastive pretraining: ``tools/train.py`` pretrains instead of fine-tuning when ``method`` is set.

    ``simcse``: two views of each text differ by dropout (and by the augmentations below when their
    probabilities are above 0); InfoNCE with in-batch negatives, gathered across data-parallel ranks.
    ``simclr`` / ``moco`` (``Data.modality: image``): two augmented views of each image, NT-Xent with
    in-batch negatives / InfoNCE against a momentum encoder's keys and a queue of negatives (MoCo v2 uses
    temperature 0.2); see :mod:`paddle_tag.engine.image_pretrainer`.
    """

    method: Optional[Literal["simcse", "simclr", "moco"]] = None  # simcse: text; simclr / moco (v2): images
    temperature: float = 0.05  # SimCSE's value
    projection_layers: int = 1  # MLP layers of the projection head; 0 = the loss sees the pooled embedding
    projection_hidden: int = 0  # hidden size of a multi-layer head; 0 = the encoder's hidden size
    projection_dim: int = 0  # output size; 0 = the encoder's hidden size
    # probability that each augmentation is applied to a view (0 = off); word-level ones use jieba words
    word_deletion: float = 0.0
    word_swap: float = 0.0
    synonym_replace: float = 0.0
    char_mask: float = 0.0
    synonyms_path: Optional[str] = None  # tab-separated synonym groups (python tools/prepare_data.py synonyms)
    # kNN monitor: labelled texts (or single-label .npz images) embedded with the frozen encoder at every evaluation
    knn_train_path: Optional[str] = None  # memory bank
    knn_eval_path: Optional[str] = None  # queries; top-1 accuracy is the metric that selects best/
    knn_k: int = 20
    knn_temperature: float = 0.07
    knn_max_items: int = 0  # images: at most this many bank and query images (fixed-seed sample); 0 = all
    # MoCo v2 (images): a FIFO of past keys as negatives, a momentum (EMA) key encoder, shuffled split BatchNorm
    queue_size: int = 4096
    momentum: float = 0.99
    bn_splits: int = 4  # sub-batches with their own BatchNorm statistics (single-device shuffle-BN), MoCo only


@dataclass
class DiscoverConfig:
    """Tag discovery (``tools/discover.py``): embed → reduce → cluster → name, over ``Data.train_path``'s texts.

    Similarities (``min_similarity``, ``outlier_threshold``, ``merge_threshold``) are cosines in the reduced space
    the clusters are found in (PCA centres the data, so they spread over [-1, 1] for any embedder); the tags'
    centroids and the items' scores are in the embedder's space, where ``tools/assign.py`` compares new items.
    ``Global.seed`` seeds every random step.
    """

    embedder: Literal["e5", "tfidf", "checkpoint"] = "e5"  # e5 = a pretrained encoder dir; checkpoint = a tagger
    model: str = "multilingual-e5-small"  # model directory / models-cache name (e5), or a checkpoint directory
    prefix: str = "query: "  # put before every text by pretrained encoders (e5 wants "query: " for clustering)
    batch_size: int = 64  # encoder batch size
    tfidf_dim: int = 256  # tfidf: TruncatedSVD components of the character 1-2 gram TF-IDF matrix
    reduce: Literal["pca", "umap", "none"] = "pca"
    dim: int = 32  # reduced dimension (pca / umap)
    cluster: Literal["kmeans", "hdbscan"] = "kmeans"
    k: int = 0  # k-means clusters; 0 = chosen in k_min..k_max (best silhouette on a sample; discover/kmeans.py)
    k_min: int = 5
    k_max: int = 30
    k_step: int = 1  # candidate k values: k_min, k_min + k_step, ..., k_max
    sample_size: int = 5000  # items (fixed-seed sample) the automatic choice of k is computed on
    kmeans_iters: int = 25
    kmeans_redo: int = 3  # k-means restarts (faiss nredo) of a given k / of the k search's over-clustering
    min_cluster_size: int = 15  # hdbscan
    min_similarity: float = 0.0  # cluster members less similar than this to their centroid become outliers
    outlier_threshold: float = 0.3  # outliers join the nearest centroid when their cosine to it is >= this
    merge_threshold: float = 0.95  # clusters whose centroids are at least this similar are merged
    top_keywords: int = 10  # keywords kept per tag
    min_df: int = 2  # a word must occur in at least this many items to be a keyword
    min_word_len: int = 2  # shorter words (single characters) are not keywords
    label_words: int = 3  # keywords joined with "·" into the tag name
    rerank_keywords: bool = False  # encoders only: order candidate keywords by similarity to the centroid
    stopwords_path: Optional[str] = "data/peoples_daily/stopwords.txt"  # python tools/prepare_data.py peoples_daily
    samples_per_tag: int = 3  # sample items per tag in the report
    db_url: Optional[str] = None  # SQLAlchemy URL; null = sqlite:///<Global.output_dir>/tags.db
    # CPU threads for BLAS / OpenMP / faiss during discovery; 0 = the libraries' default (OMP_NUM_THREADS).
    # 1 on a shared machine: spinning BLAS threads there cost 3-4x the CPU time (measured on 2 busy cores)
    threads: int = 0

    def __post_init__(self) -> None:
        # the loader checks types; these are the value ranges, checked as soon as the section is built
        positive = ("batch_size", "tfidf_dim", "dim", "k_min", "k_max", "k_step", "sample_size", "kmeans_iters",
                    "kmeans_redo", "top_keywords", "min_df", "min_word_len", "label_words", "samples_per_tag")
        for key in positive:
            value = getattr(self, key)
            if value < 1:
                raise ConfigError(f"Discover.{key} must be >= 1, got {value}")
        if self.threads < 0:
            raise ConfigError(f"Discover.threads must be >= 0 (0 = the libraries' default), got {self.threads}")
        if self.k < 0 or self.k == 1:
            raise ConfigError(f"Discover.k must be 0 (automatic) or >= 2, got {self.k}")
        if self.k_min < 2 or self.k_max < self.k_min:
            raise ConfigError(f"Discover.k_min..k_max must satisfy 2 <= k_min <= k_max, got {self.k_min}..{self.k_max}")
        if self.min_cluster_size < 2:
            raise ConfigError(f"Discover.min_cluster_size must be >= 2, got {self.min_cluster_size}")
        for key in ("min_similarity", "outlier_threshold", "merge_threshold"):
            if not -1.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"Discover.{key} is a cosine similarity in [-1, 1], got {getattr(self, key)}")
        if self.sample_size < 2 * self.k_max and self.k == 0:
            raise ConfigError(f"Discover.sample_size={self.sample_size} is too small to choose k up to "
                              f"k_max={self.k_max}; use at least {2 * self.k_max}")
        if not self.model.strip():
            raise ConfigError("Discover.model must name a model directory, a models-cache name or a checkpoint")


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
