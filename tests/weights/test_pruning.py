"""Vocabulary pruning on real THUCNews titles: a trained Unigram tokenizer + tiny BERT, the Chinese BERT
WordPiece vocab + tiny ERNIE. The pruned tokenizer gives the same pieces, the pruned model the same outputs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import read_jsonl
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from paddle_tag.errors import DataError, ModelLoadError
from paddle_tag.utils.io import sha256_file
from paddle_tag.weights.pruning import (
    is_pruned_from,
    kept_token_ids,
    prune_model_dir,
    prune_tokenizer_json,
    pruned_dir_summary,
    pruning_summary,
)

EMB = "embeddings.word_embeddings.weight"
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)


@pytest.fixture(scope="module")
def titles(real_data) -> dict[str, list[str]]:
    return {"train": [r["text"] for r in read_jsonl(real_data["thucnews"] / "train.jsonl")[:300]],
            "dev": [r["text"] for r in read_jsonl(real_data["thucnews"] / "dev.jsonl")[:20]]}


@pytest.fixture(scope="module")
def corpus(titles) -> list[str]:
    """100 titles: 80 the tokenizer was trained on, 20 unseen ones (with characters it does not know)."""
    return titles["train"][200:280] + titles["dev"]


def unigram_tokenizer(texts: list[str]) -> Tokenizer:
    """A real SentencePiece-style Unigram tokenizer (e5 layout: <s> <pad> </s> <unk> = 0..3, <s> $A </s>)."""
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    size = len(set("".join(texts))) + len(specials) + 600  # the trainer needs room for every character
    tok.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=size, special_tokens=specials,
                                                           unk_token="<unk>", show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    assert [tok.token_to_id(t) for t in specials] == [0, 1, 2, 3]
    return tok


def wordpiece_tokenizer(vocab_file: str, tmp: Path) -> Tokenizer:
    """The project's PaddleNLP-exact WordPiece tokenizer.json of the real Chinese BERT vocab."""
    from paddle_tag.data.wordpiece import build_tokenizer

    return build_tokenizer(vocab_file)


def save_model_dir(directory: Path, tok: Tokenizer, arch: str, pad_id: int, extra_rows: int = 5) -> Path:
    """A PaddleNLP save_pretrained directory of a tiny random encoder, plus tokenizer.json / provenance.json."""
    import paddle
    from paddlenlp.transformers import BertConfig, BertModel, ErnieConfig, ErnieModel

    config_cls, model_cls = {"BertModel": (BertConfig, BertModel), "ErnieModel": (ErnieConfig, ErnieModel)}[arch]
    paddle.seed(0)
    rows = tok.get_vocab_size() + extra_rows
    model_cls(config_cls(vocab_size=rows, pad_token_id=pad_id, **TINY)).save_pretrained(directory,
                                                                                        safe_serialization=True)
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    assert config["vocab_size"] == rows and config["architectures"] == [arch]
    assert load_file(directory / "model.safetensors")[EMB].shape == (rows, 32)
    tok.save(str(directory / "tokenizer.json"))
    (directory / "provenance.json").write_text(json.dumps({"source": "test random init"}), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def unigram_dir(titles, tmp_path_factory) -> Path:
    return save_model_dir(tmp_path_factory.mktemp("e5ish") / "model", unigram_tokenizer(titles["train"]),
                          "BertModel", pad_id=1)


@pytest.fixture(scope="module")
def wordpiece_dir(vocab_file, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ernie")
    directory = save_model_dir(root / "model", wordpiece_tokenizer(vocab_file, root), "ErnieModel", pad_id=0)
    shutil.copy(vocab_file, directory / "vocab.txt")
    (directory / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "ErnieTokenizer"}),
                                                     encoding="utf-8")
    return directory


def sequence_output(directory: Path, arch: str, rows: list[list[int]], pad_id: int) -> np.ndarray:
    import paddle
    from paddlenlp.transformers import BertModel, ErnieModel

    model = {"BertModel": BertModel, "ErnieModel": ErnieModel}[arch].from_pretrained(str(directory))
    model.eval()
    ids = np.full((len(rows), max(map(len, rows))), pad_id, dtype="int64")
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    with paddle.no_grad():
        return model(paddle.to_tensor(ids))[0].numpy()


def check_pruned(src: Path, out: Path, corpus: list[str], arch: str, pad_id: int) -> list[int]:
    """The invariants of a pruned model directory; returns the kept ids."""
    summary = prune_model_dir(src, corpus, out, corpus_name="thucnews-100", progress=False)
    kept = kept_token_ids(src / "tokenizer.json", corpus, progress=False)
    old_tok, new_tok = Tokenizer.from_file(str(src / "tokenizer.json")), Tokenizer.from_file(str(out / "tokenizer.json"))
    old_ids = [e.ids for e in old_tok.encode_batch(corpus)]
    new_ids = [e.ids for e in new_tok.encode_batch(corpus)]
    assert [[kept[i] for i in row] for row in new_ids] == old_ids  # same pieces on every corpus text
    assert new_tok.get_vocab_size() == len(kept) < old_tok.get_vocab_size()
    assert all(new_tok.id_to_token(new) == old_tok.id_to_token(old) for new, old in enumerate(kept))

    old_w, new_w = load_file(src / "model.safetensors"), load_file(out / "model.safetensors")
    assert new_w.keys() == old_w.keys() and new_w[EMB].shape == (len(kept), 32)
    np.testing.assert_array_equal(new_w[EMB], old_w[EMB][kept])  # row new_id == old row kept[new_id]
    assert all(new_w[k].tobytes() == old_w[k].tobytes() and new_w[k].dtype == old_w[k].dtype for k in old_w if k != EMB)

    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["vocab_size"] == len(kept) == summary["kept_vocab"]
    assert summary["original_vocab"] == old_w[EMB].shape[0] == old_tok.get_vocab_size() + 5
    assert summary["size_bytes_after"] < summary["size_bytes_before"]
    line = pruning_summary(summary)  # what training prints ("[prune] ...")
    assert f"to 100 texts: {summary['original_vocab']:,} → {len(kept):,} pieces" in line and "MB" in line
    assert "\n" not in line and f"→ {len(kept):,} pieces" in pruned_dir_summary(out)
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["source"] == "test random init"
    assert provenance["pruned"]["kept"] == len(kept) and provenance["pruned"]["corpus_texts"] == 100
    assert provenance["pruned"]["source_sha256"] == sha256_file(src / "model.safetensors")
    assert provenance["pruned"]["corpus_name"] == "thucnews-100"
    assert is_pruned_from(out, src, corpus)  # a resumed run may reuse it ...
    assert not is_pruned_from(out, src, ["query: " + t for t in corpus])  # ... but not for other texts
    assert not is_pruned_from(out, out, corpus)

    new_pad = config["pad_token_id"]
    assert kept[new_pad] == pad_id
    expected = sequence_output(src, arch, old_ids, pad_id)
    np.testing.assert_allclose(sequence_output(out, arch, new_ids, new_pad), expected, atol=1e-6, rtol=0)
    return kept


def test_prune_unigram_e5_layout(unigram_dir, corpus, tmp_path):
    kept = check_pruned(unigram_dir, tmp_path / "pruned", corpus, "BertModel", pad_id=1)
    new_tok = Tokenizer.from_file(str(tmp_path / "pruned" / "tokenizer.json"))
    assert kept[:4] == [0, 1, 2, 3]
    assert [new_tok.token_to_id(t) for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]
    assert new_tok.encode("").ids == [0, 2]
    assert any(3 in e.ids for e in new_tok.encode_batch(corpus))  # the unseen titles exercise <unk> too
    print(f"unigram: kept {len(kept)} of {Tokenizer.from_file(str(unigram_dir / 'tokenizer.json')).get_vocab_size()}")


def test_prune_wordpiece_ernie(wordpiece_dir, corpus, tmp_path):
    out = tmp_path / "pruned"
    kept = check_pruned(wordpiece_dir, out, corpus, "ErnieModel", pad_id=0)
    old_tok, new_tok = (Tokenizer.from_file(str(d / "tokenizer.json")) for d in (wordpiece_dir, out))
    for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        assert kept[new_tok.token_to_id(token)] == old_tok.token_to_id(token)
    lines = (out / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert lines == [new_tok.id_to_token(i) for i in range(len(kept))]
    assert (out / "tokenizer_config.json").read_bytes() == (wordpiece_dir / "tokenizer_config.json").read_bytes()
    print(f"wordpiece: kept {len(kept)} of {old_tok.get_vocab_size()}")


@pytest.mark.parametrize("kind", ["unigram", "wordpiece"])
def test_single_chars_keep_unseen_words_known(kind, unigram_dir, wordpiece_dir, titles, tmp_path):
    src = {"unigram": unigram_dir, "wordpiece": wordpiece_dir}[kind]
    old_tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    unk = old_tok.token_to_id({"unigram": "<unk>", "wordpiece": "[UNK]"}[kind])
    corpus = titles["train"][200:280]
    unseen = [t[::-1] for t in corpus] + ["".join(sorted(set(t))) for t in corpus]  # new words, seen characters
    unseen = [t for t, e in zip(unseen, old_tok.encode_batch(unseen)) if unk not in e.ids]  # (“ ” are not in BERT's)
    assert len(unseen) > 150
    for keep_single_chars in (True, False):
        data = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
        kept = kept_token_ids(src / "tokenizer.json", corpus, keep_single_chars=keep_single_chars, progress=False)
        new_tok = Tokenizer.from_str(json.dumps(prune_tokenizer_json(data, kept)))
        with_unk = sum(new_tok.token_to_id(old_tok.id_to_token(unk)) in e.ids for e in new_tok.encode_batch(unseen))
        assert (with_unk == 0) == keep_single_chars, (keep_single_chars, with_unk)
    rare_dropped = kept_token_ids(src / "tokenizer.json", corpus, min_count=3, progress=False)
    assert set(rare_dropped) < set(kept_token_ids(src / "tokenizer.json", corpus, progress=False))


def test_bad_inputs(unigram_dir, corpus, tmp_path):
    broken = tmp_path / "no_tokenizer"
    shutil.copytree(unigram_dir, broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match="tokenizer.json"):
        prune_model_dir(broken, corpus, tmp_path / "out", progress=False)

    from tokenizers import models, pre_tokenizers, trainers
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"], show_progress=False))
    bpe.save(str(broken / "tokenizer.json"))
    with pytest.raises(ModelLoadError, match="'BPE' cannot be pruned"):
        prune_model_dir(broken, corpus, tmp_path / "out", progress=False)
    with pytest.raises(ModelLoadError, match="cannot be pruned"):
        prune_tokenizer_json(json.loads(bpe.to_str()), [0])

    with pytest.raises(DataError, match="empty"):
        prune_model_dir(unigram_dir, [], tmp_path / "out", progress=False)
    with pytest.raises(ModelLoadError, match="another directory"):
        prune_model_dir(unigram_dir, corpus, unigram_dir, progress=False)
    data = json.loads((unigram_dir / "tokenizer.json").read_text(encoding="utf-8"))
    with pytest.raises(ModelLoadError, match="not kept"):  # <unk> (3) dropped
        prune_tokenizer_json(data, [0, 1, 2, 4, 5])
    weird = {**data, "post_processor": {"type": "SomethingNew"}}
    with pytest.raises(ModelLoadError, match="SomethingNew"):
        prune_tokenizer_json(weird, [0, 1, 2, 3])
    assert not (tmp_path / "out").exists()


def test_interrupted_write_keeps_previous_output(unigram_dir, corpus, tmp_path, monkeypatch):
    import safetensors.numpy

    out = tmp_path / "pruned"
    prune_model_dir(unigram_dir, corpus[:50], out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.numpy, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        prune_model_dir(unigram_dir, corpus, out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pruned"]  # no temp sibling left behind
