"""The WordPiece tokenizer.json gives exactly PaddleNLP's ErnieTokenizer ids: real titles and poems, prices,
units, symbols (PaddleNLP is the reference here; training and deploy both use the tokenizer.json)."""
from __future__ import annotations

import itertools

import pytest
from helpers import read_jsonl

from paddle_tag.data.tokenizer import TextTokenizer, encode_texts, load_tokenizer
from paddle_tag.data.wordpiece import build_tokenizer, read_vocab
from paddle_tag.errors import ModelLoadError

PRICES_UNITS = ["￥199", "￥1", "¥8999起", "€25", "£9.99", "$99", "3.5℃", "-5°C", "50%", "10×20cm", "©2024",
                "A→B", "®™", "±0.5mm", "≥90分", "1/2", "2²", "H₂O", "μs", "µs", "①②③", "〇", "Ø12", "½杯", "5‰",
                "№1", "§3", "°", "＄", "～", "…", "·", "《三体》", "「引号」", "——", "🎉", "😀", "🇨🇳", "👍🏻"]
MIXED = ["iPhone15 Pro Max", "COVID-19", "5G手机", "NBA总决赛G7", "Windows 11更新", "GDP同比增长6.9%", "A股",
         "ＡＢＣ全角１２３", "café naïve Ångström", "İstanbul", "ΑΣ σ", "Straße", "ＨＥＬＬＯ", "hello-world_2024",
         "e.g. U.S.A.", "C++/C#", "x²+y²=z²", "CPI↑0.3pct", "https://www.example.com/a?b=1", "#话题# @某人",
         "[SEP] literal [MASK] tokens", "[unk] lower [Cls]", "tab\tnew\nline\r\nend", "zero\u200bwidth",
         "soft\u00adhyphen", "line\u2028sep\u2029para", "nbsp\u00a0ideo\u3000space", "\u0085nel\x0bvt\x0cff",
         "a" * 101, "b" * 100 + " ok", "ＡＢ" * 60, "mixed中文English混排123", "  leading and trailing  ", "", " "]
# Code points where Python's Unicode tables and the Rust library's disagree, or PaddleNLP-only ranges
EDGE = ["\u1734", "\u2e4a", "\u0898", "\U0002b820", "\U0002b91f", "\U0002b920", "\U0001fae8", "\u0378", "\ue000",
        "\ufffd", "\x00", "\u0301", "\u1ac2"]


def symbol_strings() -> list[str]:
    """Prices, units and symbols glued to letters, digits and Chinese, the way news titles write them."""
    out = []
    for left, sym, right in itertools.product(["", "价", "A", "3", " "], PRICES_UNITS, ["", "1", "元", "x", " 新"]):
        out.append(f"{left}{sym}{right}")
    out += [f"今年{a}上涨{b}，{c}" for a, b, c in zip(PRICES_UNITS, reversed(PRICES_UNITS), MIXED * 2)]
    out += MIXED + [f"x{ch}1 {ch}{ch}中{ch}" for ch in EDGE]
    return out


@pytest.fixture(scope="module")
def tokenizer_dir(vocab_file, tmp_path_factory):
    """A PaddleNLP save_pretrained folder of the real Chinese BERT vocab."""
    from paddlenlp.transformers import ErnieTokenizer

    directory = tmp_path_factory.mktemp("tok") / "tokenizer"
    ErnieTokenizer(vocab_file=vocab_file).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def paddle_tok(tokenizer_dir):
    from paddlenlp.transformers import ErnieTokenizer

    return ErnieTokenizer.from_pretrained(str(tokenizer_dir))


def paddlenlp_ids(paddle_tok, texts, max_seq_len):
    """PaddleNLP's ids, cut like ``encode_texts`` (keep the head and the closing [SEP])."""
    rows = paddle_tok(list(texts), truncation=False, return_token_type_ids=False)["input_ids"]
    return [row if len(row) <= max_seq_len else row[:max_seq_len - 1] + [row[-1]] for row in rows]


def assert_same_ids(paddle_tok, tokenizer_dir, texts, max_seq_len):
    tok = TextTokenizer(build_tokenizer(tokenizer_dir / "vocab.txt", tokenizer_dir))
    expected = paddlenlp_ids(paddle_tok, texts, max_seq_len)
    got = encode_texts(tok, texts, max_seq_len).input_ids
    bad = [(t, paddle_tok.convert_ids_to_tokens(e), [tok.id_to_token(i) for i in g])
           for t, e, g in zip(texts, expected, got) if e != g]
    assert not bad, f"{len(bad)} of {len(texts)} differ, e.g. {bad[:3]}"
    return expected


def test_vocab_is_read_like_paddlenlp(tokenizer_dir, paddle_tok):
    vocab = read_vocab(tokenizer_dir / "vocab.txt")
    assert len(vocab) == 21128 and vocab["\u2028"] == 343  # str.splitlines() would split this token
    assert vocab == dict(paddle_tok.vocab.token_to_idx)


def test_real_titles_and_poems_match_paddlenlp_ids(real_data, paddle_tok, tokenizer_dir):
    titles = [r["text"] for r in read_jsonl(real_data["thucnews"] / "test.jsonl")[:800]]
    poems = [r["text"] for r in read_jsonl(real_data["poetry"] / "dev.jsonl")[:400]]
    texts = titles + poems
    assert len(texts) >= 1000
    ids = assert_same_ids(paddle_tok, tokenizer_dir, texts, 48)
    assert sum(len(row) == 48 for row in ids) > 300  # poems are long: truncation is exercised
    assert_same_ids(paddle_tok, tokenizer_dir, poems, 512)  # and untruncated


def test_prices_units_symbols_and_mixed_text_match(paddle_tok, tokenizer_dir):
    texts = symbol_strings()
    assert len(texts) > 1000
    ids = assert_same_ids(paddle_tok, tokenizer_dir, texts, 128)
    tok = build_tokenizer(tokenizer_dir / "vocab.txt", tokenizer_dir)
    assert tok.encode("￥1").tokens == ["[CLS]", "￥", "1", "[SEP]"]  # not ['￥', '##1']
    assert [tok.id_to_token(i) for i in ids[texts.index("[SEP] literal [MASK] tokens")]][:2] == ["[CLS]", "[SEP]"]
    for max_len in (3, 5, 16):
        assert_same_ids(paddle_tok, tokenizer_dir, texts[::7], max_len)


def test_unicode_sample_matches(paddle_tok, tokenizer_dir):
    """One code point in every 97 of the whole range, glued to letters, digits and a Chinese character."""
    texts = [f"a{chr(cp)}1 {chr(cp)}{chr(cp)}中{chr(cp)}" for cp in range(0, 0x110000, 97)
             if not 0xD800 <= cp <= 0xDFFF]
    assert_same_ids(paddle_tok, tokenizer_dir, texts, 64)


def test_saved_file_round_trips_and_truncates(tokenizer_dir, tmp_path, paddle_tok):
    from tokenizers import Tokenizer

    path = load_tokenizer(str(tokenizer_dir), None).save(tmp_path, max_seq_len=10)
    tok = Tokenizer.from_file(str(path))
    text = "皇马客场三比一击败巴萨 继续领跑西甲积分榜"
    assert tok.encode(text).ids == paddlenlp_ids(paddle_tok, [text], 10)[0]
    assert len(tok.encode(text).ids) == 10 and tok.encode(text).ids[-1] == 102
    assert load_tokenizer(str(tmp_path), None).pad_token_id == 0


def test_unusable_vocabularies_are_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="vocabulary not found"):
        build_tokenizer(tmp_path / "vocab.txt")
    (tmp_path / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="special tokens"):
        build_tokenizer(tmp_path / "vocab.txt", tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "GPTTokenizer"}', encoding="utf-8")
    with pytest.raises(ModelLoadError, match="GPTTokenizer"):
        build_tokenizer(tmp_path / "vocab.txt", tmp_path)
