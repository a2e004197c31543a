"""Small composable augmentations of Chinese text, for contrastive (SimCSE-style) pretraining.

Each augmentation is one class with typed defaults that raises :class:`ValueError` for bad
parameters. It is applied to a text with probability ``p`` and is called with an explicit
``numpy.random.Generator``: ``aug(text, rng)``, so the same seed gives the same output. Every
call draws once from ``rng`` to decide whether to apply (also when ``p`` is 0 or 1), so the
stream stays aligned whatever ``p`` is. The word-level ones split the text with
``jieba.lcut`` (default mode, whose words concatenate back to the text exactly):

* :class:`WordDeletion`: delete each word with probability ``rate`` (never all of them);
* :class:`WordSwap`: swap ``swaps`` pairs of words, random or adjacent;
* :class:`SynonymReplace`: replace each word that has synonyms with probability ``rate`` by one
  of them (a synonym table from :func:`load_synonyms`, e.g. ``data/synonyms/synonyms.tsv``);
* :class:`CharMask`: replace each non-space character with probability ``rate`` by a mask
  string (the tokenizer's mask or unk token, e.g. ``"[MASK]"``, given by the caller);
* :class:`Compose` applies several in order; :func:`build_text_augment` builds one from a plain
  ``{name: params}`` dict (names in :data:`TEXT_AUGMENTS`).

Back-translation (zh -> en -> zh) is not offered: it needs a translation model or service, and
none can be reached or loaded offline here.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import jieba
import numpy as np

from paddle_tag.data.augment.common import apply_in_order, check_rng

jieba.setLogLevel(logging.WARNING)

__all__ = ["CharMask", "Compose", "SynonymReplace", "TEXT_AUGMENTS", "TextAugment", "WordDeletion",
           "WordSwap", "build_text_augment", "load_synonyms", "words"]


def words(text: str) -> list[str]:
    """Split ``text`` into jieba words (``jieba.lcut``, default mode); they join back to ``text``."""
    return jieba.lcut(text)


def _check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


class TextAugment(ABC):
    """Base class: apply :meth:`apply` to a text with probability ``p``.

    Args:
        p: Probability of applying the augmentation to a text, in [0, 1].
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = _check_fraction("p", p)

    def __call__(self, text: str, rng: np.random.Generator) -> str:
        """Return ``text`` augmented with probability ``p``, else ``text`` unchanged."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        check_rng(rng)
        if rng.random() >= self.p or not text:
            return text
        return self.apply(text, rng)

    @abstractmethod
    def apply(self, text: str, rng: np.random.Generator) -> str:
        """Augment a non-empty ``text`` (always; ``p`` is handled by ``__call__``)."""

    def _params(self) -> dict[str, Any]:
        return {"p": self.p}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class WordDeletion(TextAugment):
    """Delete each jieba word with probability ``rate``; never return an empty text.

    When every word would go (or only whitespace would be left), one of the non-space words is
    kept, chosen at random. A text of one word is returned unchanged.

    Args:
        p: Probability of applying the augmentation to a text.
        rate: Probability of deleting each word, in [0, 1].
    """

    def __init__(self, p: float = 0.5, rate: float = 0.1) -> None:
        super().__init__(p)
        self.rate = _check_fraction("rate", rate)

    def apply(self, text: str, rng: np.random.Generator) -> str:
        ws = words(text)
        drop = rng.random(len(ws)) < self.rate
        kept = [w for w, d in zip(ws, drop) if not d]
        if not "".join(kept).strip():
            solid = [i for i, w in enumerate(ws) if w.strip()] or list(range(len(ws)))
            kept = [ws[solid[int(rng.integers(len(solid)))]]]
        return "".join(kept)

    def _params(self) -> dict[str, Any]:
        return {"p": self.p, "rate": self.rate}


class WordSwap(TextAugment):
    """Swap ``swaps`` pairs of jieba words (the multiset of words is kept).

    Args:
        p: Probability of applying the augmentation to a text.
        swaps: Number of swaps, each of a pair of distinct positions (a positive integer).
        mode: ``"random"`` swaps two positions drawn at random, ``"adjacent"`` a word and the
            next one. A text of fewer than two words is returned unchanged.
    """

    MODES = ("random", "adjacent")

    def __init__(self, p: float = 0.5, swaps: int = 1,
                 mode: Literal["random", "adjacent"] = "random") -> None:
        super().__init__(p)
        if isinstance(swaps, bool) or not isinstance(swaps, int) or swaps < 1:
            raise ValueError(f"swaps must be a positive integer, got {swaps!r}")
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}, got {mode!r}")
        self.swaps = swaps
        self.mode = mode

    def apply(self, text: str, rng: np.random.Generator) -> str:
        ws = words(text)
        n = len(ws)
        if n < 2:
            return text
        for _ in range(self.swaps):
            if self.mode == "adjacent":
                i = int(rng.integers(n - 1))
                j = i + 1
            else:
                i, j = (int(k) for k in rng.choice(n, size=2, replace=False))
            ws[i], ws[j] = ws[j], ws[i]
        return "".join(ws)

    def _params(self) -> dict[str, Any]:
        return {"p": self.p, "swaps": self.swaps, "mode": self.mode}


def load_synonyms(path: str | os.PathLike[str], min_chars: int = 2) -> dict[str, list[str]]:
    """Read a synonym table: one group of mutually synonymous words a line, tab-separated.

    Returns ``{word: [its synonyms]}``: for a word in several groups (several senses), the union
    of the other words of those groups, in file order, without the word itself. Words shorter
    than ``min_chars`` characters are left out on both sides (single characters are highly
    ambiguous in Cilin: 口 and 食指 are synonyms of 人手). Lines starting with ``#`` and blank
    lines are skipped. Raises :class:`ValueError` when no synonym pair is left.
    """
    if isinstance(min_chars, bool) or not isinstance(min_chars, int) or min_chars < 1:
        raise ValueError(f"min_chars must be a positive integer, got {min_chars!r}")
    table: dict[str, dict[str, None]] = {}
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip() or line.startswith("#"):
                continue
            group = [w for w in dict.fromkeys(line.rstrip("\r\n").split("\t"))
                     if w.strip() == w and len(w) >= min_chars]
            for w in group:
                others = table.setdefault(w, {})
                others.update((o, None) for o in group if o != w)
    out = {w: list(others) for w, others in table.items() if others}
    if not out:
        raise ValueError(f"{path}: no synonym pairs (need tab-separated groups of two or more "
                         f"words of at least {min_chars} characters)")
    return out


class SynonymReplace(TextAugment):
    """Replace each jieba word that has synonyms, with probability ``rate``, by one of them.

    The synonym is drawn uniformly from ``synonyms[word]``. Words without an entry are kept.

    Args:
        synonyms: ``{word: [synonyms]}``, e.g. from :func:`load_synonyms`; must hold at least
            one word with a synonym other than itself.
        p: Probability of applying the augmentation to a text.
        rate: Probability of replacing each word that has synonyms, in [0, 1].
    """

    def __init__(self, synonyms: Mapping[str, Sequence[str]], p: float = 0.5,
                 rate: float = 0.1) -> None:
        super().__init__(p)
        self.rate = _check_fraction("rate", rate)
        if not isinstance(synonyms, Mapping):
            raise ValueError(f"synonyms must be a mapping word -> list of synonyms, "
                             f"got {type(synonyms).__name__}")
        table: dict[str, tuple[str, ...]] = {}
        for word, cands in synonyms.items():
            if not isinstance(word, str) or isinstance(cands, str) or not isinstance(cands, Sequence):
                raise ValueError(f"synonyms must map str -> list of str, got {word!r}: {cands!r}")
            if not all(isinstance(c, str) and c for c in cands):
                raise ValueError(f"synonyms of {word!r} must be non-empty strings, got {cands!r}")
            clean = tuple(c for c in dict.fromkeys(cands) if c != word)
            if clean:
                table[word] = clean
        if not table:
            raise ValueError("synonyms holds no word with a synonym other than itself")
        self.synonyms = table

    def apply(self, text: str, rng: np.random.Generator) -> str:
        out = []
        for w in words(text):
            cands = self.synonyms.get(w)
            if cands and rng.random() < self.rate:
                w = cands[int(rng.integers(len(cands)))]
            out.append(w)
        return "".join(out)

    def _params(self) -> dict[str, Any]:
        return {"synonyms": f"<{len(self.synonyms)} words>", "p": self.p, "rate": self.rate}


class CharMask(TextAugment):
    """Replace each non-whitespace character, with probability ``rate``, by ``mask``.

    ``mask`` is a string inserted as is, normally the tokenizer's mask or unknown token
    (``"[MASK]"``, ``"<mask>"``, ``"[UNK]"``), which the tokenizer then reads as one token.
    Whitespace is never masked.

    Args:
        p: Probability of applying the augmentation to a text.
        rate: Probability of masking each character, in [0, 1].
        mask: The non-empty string put in place of a masked character.
    """

    def __init__(self, p: float = 0.5, rate: float = 0.1, mask: str = "[MASK]") -> None:
        super().__init__(p)
        self.rate = _check_fraction("rate", rate)
        if not isinstance(mask, str) or not mask.strip():
            raise ValueError(f"mask must be a non-empty string, got {mask!r}")
        self.mask = mask

    def apply(self, text: str, rng: np.random.Generator) -> str:
        hit = rng.random(len(text)) < self.rate
        return "".join(self.mask if h and not ch.isspace() else ch for ch, h in zip(text, hit))

    def _params(self) -> dict[str, Any]:
        return {"p": self.p, "rate": self.rate, "mask": self.mask}


class Compose:
    """Apply augmentations in order, each with its own ``p``, all drawing from one ``rng``.

    Args:
        augments: The augmentations (each a callable ``(text, rng) -> str``, normally a
            :class:`TextAugment`); an empty list is the identity.
    """

    def __init__(self, augments: Sequence[TextAugment]) -> None:
        if isinstance(augments, (str, TextAugment)) or not isinstance(augments, Sequence):
            raise ValueError(f"augments must be a list of augmentations, got {augments!r}")
        bad = [a for a in augments if not callable(a)]
        if bad:
            raise ValueError(f"augments must be callables (text, rng) -> str, got {bad[0]!r}")
        self.augments = list(augments)

    def __call__(self, text: str, rng: np.random.Generator) -> str:
        """Return ``text`` passed through every augmentation in order."""
        return apply_in_order(self.augments, text, rng)

    def __len__(self) -> int:
        return len(self.augments)

    def __repr__(self) -> str:
        return f"Compose({self.augments!r})"


#: Config name -> augmentation class, for :func:`build_text_augment`.
TEXT_AUGMENTS: dict[str, type[TextAugment]] = {
    "word_deletion": WordDeletion,
    "word_swap": WordSwap,
    "synonym_replace": SynonymReplace,
    "char_mask": CharMask,
}


def build_text_augment(cfg: Mapping[str, Mapping[str, Any] | None] | None) -> Compose:
    """Build a :class:`Compose` from ``{name: params}``, applied in the dict's order.

    Names are the keys of :data:`TEXT_AUGMENTS`; ``params`` are the class's keyword arguments
    (``None`` or ``{}`` for its defaults). ``synonym_replace`` takes ``synonyms_path`` (a table
    for :func:`load_synonyms`, with an optional ``min_chars``) instead of, or as well as, an
    explicit ``synonyms`` mapping. ``None`` or ``{}`` gives the identity. Example::

        build_text_augment({"word_deletion": {"p": 0.5, "rate": 0.1},
                            "synonym_replace": {"synonyms_path": "data/synonyms/synonyms.tsv"},
                            "char_mask": {"p": 0.3, "mask": "[MASK]"}})

    Raises :class:`ValueError` for an unknown name or bad parameters.
    """
    if cfg is None:
        return Compose([])
    if not isinstance(cfg, Mapping):
        raise ValueError(f"text augment config must be a mapping name -> params, got {cfg!r}")
    augments: list[TextAugment] = []
    for name, params in cfg.items():
        if name not in TEXT_AUGMENTS:
            raise ValueError(f"unknown text augmentation {name!r}; choose from "
                             f"{', '.join(TEXT_AUGMENTS)}")
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ValueError(f"{name}: params must be a mapping, got {params!r}")
        kw = dict(params)
        if name == "synonym_replace":
            path = kw.pop("synonyms_path", None)
            min_chars = kw.pop("min_chars", 2)
            if path is not None:
                loaded = load_synonyms(path, min_chars=min_chars)
                extra = kw.get("synonyms")
                if extra is not None and not isinstance(extra, Mapping):
                    raise ValueError(f"synonym_replace: synonyms must be a mapping, got {extra!r}")
                kw["synonyms"] = {**loaded, **(extra or {})}
            elif "synonyms" not in kw:
                raise ValueError("synonym_replace: give synonyms_path (a synonyms.tsv) or synonyms")
        try:
            augments.append(TEXT_AUGMENTS[name](**kw))
        except TypeError as exc:
            raise ValueError(f"{name}: bad parameters {sorted(kw)}: {exc}") from None
    return Compose(augments)
