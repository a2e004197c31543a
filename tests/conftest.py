"""Shared fixtures: the real registry data (prepared once into the repo's data/ folder) and tiny configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DATA, read_jsonl, write_subset

from paddle_tag.data.sources import SUBDIRS, prepare


@pytest.fixture(scope="session")
def real_data() -> dict[str, Path]:
    """THUCNews titles, tagged poems and the Chinese BERT vocab, fetched from the registries (cached)."""
    for name in ("thucnews", "poetry", "vocab"):
        prepare(name, DATA)
    return {name: DATA / SUBDIRS[name] for name in ("thucnews", "poetry", "vocab")}


@pytest.fixture(scope="session")
def vocab_file(real_data) -> str:
    return str(real_data["vocab"] / "vocab.txt")


@pytest.fixture(scope="session")
def thucnews_small(real_data, tmp_path_factory) -> dict[str, Path]:
    """400 train / 100 dev real THUCNews titles."""
    root = tmp_path_factory.mktemp("thucnews_small")
    return {"train": write_subset(real_data["thucnews"] / "train.jsonl", root / "train.jsonl", 400),
            "dev": write_subset(real_data["thucnews"] / "dev.jsonl", root / "dev.jsonl", 100)}


@pytest.fixture(scope="session")
def poetry_small(real_data, tmp_path_factory) -> dict[str, Path]:
    """Real tagged poems: 400 train; dev keeps only poems whose tags all occur in that train subset."""
    root = tmp_path_factory.mktemp("poetry_small")
    train = write_subset(real_data["poetry"] / "train.jsonl", root / "train.jsonl", 400)
    seen = {tag for row in read_jsonl(train) for tag in row["labels"]}
    dev_rows = [r for r in read_jsonl(real_data["poetry"] / "dev.jsonl") if set(r["labels"]) <= seen][:100]
    dev = root / "dev.jsonl"
    dev.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dev_rows), encoding="utf-8")
    return {"train": train, "dev": dev}



@pytest.fixture(scope="session")
def tiny_checkpoint(thucnews_small, vocab_file, tmp_path_factory) -> Path:
    """A briefly trained tiny multi-class checkpoint on real titles (for eval / predict tests)."""
    from helpers import REPO, tiny_overrides

    from paddle_tag.config import load_config
    from paddle_tag.engine.builder import build_run

    out = tmp_path_factory.mktemp("tiny_ckpt")
    config = load_config(REPO / "configs/text/thucnews_ernie_small.yaml",
                         tiny_overrides(thucnews_small, out, vocab_file, Global__max_steps=10,
                                        Data__test_path="null"))
    build_run(config).fit()
    return out / "best"


@pytest.fixture(scope="session")
def tiny_bert_dir(vocab_file, tmp_path_factory) -> Path:
    """A random tiny PaddleNLP ``BertModel`` (hidden 32, 2 layers) over the real Chinese BERT vocab, saved as
    safetensors with its WordPiece ``tokenizer.json`` — a model directory ``Embedder.from_pretrained`` loads."""
    import numpy as np
    import paddle
    from paddlenlp.transformers import BertConfig, BertModel

    from paddle_tag.data.tokenizer import load_tokenizer

    root = tmp_path_factory.mktemp("tiny_bert") / "model"
    tokenizer = load_tokenizer(None, vocab_file)
    with paddle.utils.unique_name.guard():
        model = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                     pad_token_id=tokenizer.pad_token_id))
    # weights random and O(1), LayerNorms near identity: a wrong mask, window or pooling shows in the numbers
    rng = np.random.default_rng(0)

    def draw(name: str, shape: list[int]) -> np.ndarray:
        if "norm" in name:
            return rng.normal(1.0 if name.endswith("weight") else 0.0, 0.1, shape).astype(np.float32)
        return rng.normal(0.0, 0.5, shape).astype(np.float32)

    model.set_state_dict({k: draw(k, v.shape) for k, v in model.state_dict().items()})
    model.save_pretrained(str(root), safe_serialization=True)
    tokenizer.save(root)
    return root
