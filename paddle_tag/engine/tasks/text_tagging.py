"""Text tagging: data → tokenizer → labels → tagger (encoder, window pooling, wide part, head) → loss."""
from __future__ import annotations

from tqdm.auto import tqdm

from paddle_tag.config import Config
from paddle_tag.data.dataset import TaggingDataset
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import read_examples
from paddle_tag.data.text_inputs import TextInputSpec
from paddle_tag.data.tokenizer import TextTokenizer, load_tokenizer
from paddle_tag.engine.feature_cache import feature_cache_dir, window_features
from paddle_tag.engine.head_init import init_head_from_tag_names
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.tasks.pretrained_text import check_positions, pretrained_model_config
from paddle_tag.engine.tasks.tagging import Tagging
from paddle_tag.errors import ConfigError
from paddle_tag.losses import build_loss
from paddle_tag.models import build_model


def load_text_split(path: str, config: Config, tokenizer: TextTokenizer, labels: LabelSet,
                    split: str) -> TaggingDataset:
    """Read, check and tokenize one labelled text split."""
    examples = read_examples(path, config.Data.format)
    labels.check_known(examples, split)
    dataset = TaggingDataset.from_examples(examples, tokenizer, labels, config.Data.task,
                                           TextInputSpec.from_config(config.Data, config.Model))
    report_cut(dataset, split, config)
    return dataset


def report_cut(dataset: TaggingDataset, split: str, config: Config) -> None:
    """Say how many texts of a split the model cannot read whole (none is cut silently)."""
    cut = int(dataset.cut.sum())
    if not cut:
        return
    data, model = config.Data, config.Model
    if data.on_long_text == "windows":
        limit = f"Data.max_windows={data.max_windows} windows of Data.max_seq_len={data.max_seq_len} tokens"
    else:
        limit = f"Data.max_seq_len={data.max_seq_len} tokens (Data.on_long_text=windows reads them whole)"
    if model.wide:
        limit += f", or Model.wide_max_chars={model.wide_max_chars} characters"
    tqdm.write(f"[data] {split}: {cut} of {len(dataset)} texts are longer than {limit}; their ends are not read")


class TextTagging(Tagging):
    """Multi-class or multi-label tagging of texts (``Data.modality: text``, no ``Pretrain.method``)."""

    kind = "text_tagging"

    @classmethod
    def from_config(cls, config: Config, runtime: Runtime) -> "TextTagging":
        data = config.Data
        train_examples = read_examples(data.train_path, data.format)
        model_cfg = pretrained_model_config(config, [ex.text for ex in train_examples], runtime)
        tokenizer = load_tokenizer(model_cfg.pretrained, model_cfg.vocab_file, data.text_prefix)
        labels = LabelSet.from_examples(train_examples)
        if len(labels) < 2:
            raise ConfigError(f"{data.train_path}: training needs at least 2 distinct labels, found {labels.names}")
        train_set = TaggingDataset.from_examples(train_examples, tokenizer, labels, data.task,
                                                 TextInputSpec.from_config(data, config.Model))
        report_cut(train_set, "train", config)
        eval_set = load_text_split(data.eval_path, config, tokenizer, labels, "eval")
        test_set = load_text_split(data.test_path, config, tokenizer, labels, "test") if data.test_path else None
        model = build_model(model_cfg, len(labels), len(tokenizer), tokenizer.pad_token_id)
        check_positions(data.max_seq_len, model.encoder, model_cfg.pretrained)
        if model.wide is not None and model.wide.use_idf:
            model.wide.fit_idf(train_set.encoded.chars)
        if model_cfg.freeze_encoder:  # embed every window once (or read the cache); only the layers above learn
            cache = feature_cache_dir(model_cfg.feature_cache)
            for split, dataset in (("train", train_set), ("eval", eval_set), ("test", test_set)):
                if dataset is not None:
                    dataset.features = window_features(model, dataset, cache, data.eval_batch_size,
                                                       config.Global.progress and runtime.is_main,
                                                       desc=f"embed {split}")
        prior = model.init_head_bias(train_set.targets, data.task) if model_cfg.head_bias_init == "prior" else None
        if model_cfg.head_init == "tag_names":
            init_head_from_tag_names(model, tokenizer, labels, train_set, prior)
        return cls(config, runtime, model, build_loss(config.Loss, data.task), tokenizer, labels, train_set,
                   eval_set, test_set)
