"""Vocabulary pruning: keep only the tokenizer pieces a corpus uses, shrink the word embedding to match.

A multilingual model spends most of its parameters on the word embedding (multilingual-e5-small:
250,037 rows x 384), yet a Chinese corpus touches a few thousand of its pieces. :func:`prune_model_dir`
keeps the special / added tokens, every piece the corpus encodes to and (``keep_single_chars``) every
one-character piece of a character seen in the corpus, then renumbers them ``0..k-1`` in their old
order: the embedding keeps rows ``[kept]``, ``tokenizer.json`` is rewritten with the new ids.

Why the ids of the corpus do not change: WordPiece's greedy longest match and Unigram's Viterbi search
both pick among the pieces of the vocabulary; when every piece of the original answer is kept, no
kept piece can beat it (a subset of the candidates that still holds the winner). Unigram scores an
unknown character at ``min(score) - 10``, so the lowest-scored piece is kept too. With ``min_count >
1`` rare pieces are dropped, and their words are tokenised into smaller kept pieces instead.

Only numpy, ``tokenizers`` and ``safetensors`` are used (no paddle): it runs in seconds.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from paddle_tag.errors import DataError, ModelLoadError
from paddle_tag.utils.io import read_json, replace_directory, sha256_file

SUPPORTED_MODELS = ("Unigram", "WordPiece")
WEIGHTS, CONFIG, TOKENIZER, PROVENANCE, VOCAB_TXT = (
    "model.safetensors", "config.json", "tokenizer.json", "provenance.json", "vocab.txt")
COPIED = ("tokenizer_config.json", "special_tokens_map.json")  # small files that hold no token ids
BATCH = 1000
CHECKED = 200  # corpus texts that prune_model_dir re-encodes with the pruned tokenizer as a self-check


def _read_tokenizer_json(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no tokenizer.json, cannot prune the vocabulary")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a valid tokenizer.json ({exc})") from None
    mtype = (data.get("model") or {}).get("type")
    if mtype not in SUPPORTED_MODELS:
        raise ModelLoadError(f"{path}: tokenizer model {mtype!r} cannot be pruned "
                             f"(supported: {', '.join(SUPPORTED_MODELS)})")
    return data


def _pieces(data: dict[str, Any]) -> dict[int, str]:
    """``{id: piece}`` of the tokenizer model's own vocabulary."""
    model = data["model"]
    if model["type"] == "Unigram":
        return {i: piece for i, (piece, _score) in enumerate(model["vocab"])}
    return {i: tok for tok, i in model["vocab"].items()}


def _processor_ids(proc: dict[str, Any] | None) -> list[int]:
    if not proc:
        return []
    kind = proc.get("type")
    if kind == "TemplateProcessing":
        return [i for tok in proc.get("special_tokens", {}).values() for i in tok["ids"]]
    if kind in ("BertProcessing", "RobertaProcessing"):
        return [proc["cls"][1], proc["sep"][1]]
    if kind == "Sequence":
        return [i for sub in proc.get("processors", []) for i in _processor_ids(sub)]
    if kind == "ByteLevel":
        return []
    raise ModelLoadError(f"tokenizer.json: post_processor {kind!r} cannot be remapped")


def _required_ids(data: dict[str, Any]) -> set[int]:
    """Ids a pruned tokenizer cannot do without: added / special tokens, unk, post-processor, padding."""
    model = data["model"]
    ids = {tok["id"] for tok in data.get("added_tokens") or []}
    ids.update(_processor_ids(data.get("post_processor")))
    if data.get("padding"):
        ids.add(data["padding"]["pad_id"])
    if model["type"] == "Unigram":
        vocab = model["vocab"]
        if model.get("unk_id") is not None:
            ids.add(model["unk_id"])
        if vocab:  # keeps min(score), hence the score of an unknown character
            ids.add(min(range(len(vocab)), key=lambda i: vocab[i][1]))
        if model.get("byte_fallback"):
            ids.update(i for i, (p, _) in enumerate(vocab) if len(p) == 6 and p.startswith("<0x") and p[-1] == ">")
    else:
        unk = model.get("unk_token", "[UNK]")
        if unk not in model["vocab"]:
            raise ModelLoadError(f"tokenizer.json: WordPiece unk_token {unk!r} is not in the vocabulary")
        ids.add(model["vocab"][unk])
    return ids


def _metaspace(pre: dict[str, Any] | None) -> str:
    if not pre:
        return "\u2581"
    if pre.get("type") == "Metaspace":
        return pre.get("replacement", "\u2581")
    for sub in pre.get("pretokenizers") or []:
        if sub.get("type") == "Metaspace":
            return sub.get("replacement", "\u2581")
    return "\u2581"


def tokenizer_size(data: dict[str, Any]) -> int:
    """Number of ids the tokenizer can produce (model vocabulary and added tokens), ``max id + 1``."""
    ids = list(_pieces(data)) + [tok["id"] for tok in data.get("added_tokens") or []]
    return max(ids) + 1 if ids else 0


def kept_token_ids(tokenizer_json_path: str | os.PathLike, texts: Iterable[str], *, keep_single_chars: bool = True,
                   min_count: int = 1, extra_ids: Iterable[int] = (), progress: bool = True) -> list[int]:
    """Sorted old ids to keep for ``texts``: required ids (special / added tokens, unk, post-processor
    and padding ids, ``extra_ids``), ids the texts encode to at least ``min_count`` times, and with
    ``keep_single_chars`` every one-character piece (without its ``▁`` / ``##`` mark) of a character
    that occurs in the texts, so unseen words of seen characters still tokenise without unk."""
    from tokenizers import Tokenizer
    from tqdm import tqdm

    data = _read_tokenizer_json(tokenizer_json_path)
    texts = list(texts)
    if not texts:
        raise DataError("the pruning corpus is empty: give at least one text")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise DataError(f"pruning corpus text #{bad} is a {type(texts[bad]).__name__}, not a str")
    if min_count < 1:
        raise DataError(f"min_count must be at least 1, got {min_count}")
    tok = Tokenizer.from_str(json.dumps(data))
    tok.no_truncation()  # count every piece of a long text, not only those below max_seq_len
    tok.no_padding()
    size = tokenizer_size(data)
    counts = np.zeros(size, dtype=np.int64)
    for start in tqdm(range(0, len(texts), BATCH), desc="pruning: encode corpus", unit="batch", disable=not progress):
        encs = tok.encode_batch(texts[start:start + BATCH], add_special_tokens=True)
        ids = np.fromiter((i for enc in encs for i in enc.ids), dtype=np.int64)
        counts += np.bincount(ids, minlength=size)[:size]
    kept = {int(i) for i in np.flatnonzero(counts >= min_count)} | _required_ids(data)
    for i in extra_ids:
        if not 0 <= i < size:
            raise ModelLoadError(f"token id {i} is outside the tokenizer's {size} ids")
        kept.add(int(i))
    if keep_single_chars:
        chars = set("".join(texts))
        if tok.normalizer is not None:
            chars.update("".join(tok.normalizer.normalize_str(t) for t in texts))
        unigram = data["model"]["type"] == "Unigram"
        model = data["model"]
        mark = _metaspace(data.get("pre_tokenizer")) if unigram else model.get("continuing_subword_prefix", "##")
        for i, piece in _pieces(data).items():
            bare = piece[len(mark):] if piece.startswith(mark) else piece
            if (len(bare) == 1 and bare in chars) or (unigram and piece == mark):
                kept.add(i)
    return sorted(kept)


def prune_tokenizer_json(tokenizer_json: dict, kept: Sequence[int]) -> dict:
    """A copy of ``tokenizer_json`` that knows only the ``kept`` old ids, renumbered ``0..len(kept)-1``
    in old-id order. Every id it holds (model vocabulary, unk, added tokens, post-processor, padding)
    is remapped; an id that is not kept, or a part it cannot remap, is an error."""
    data = copy.deepcopy(tokenizer_json)
    model = data.get("model") or {}
    if model.get("type") not in SUPPORTED_MODELS:
        raise ModelLoadError(f"tokenizer model {model.get('type')!r} cannot be pruned "
                             f"(supported: {', '.join(SUPPORTED_MODELS)})")
    kept = [int(i) for i in kept]
    if any(b <= a for a, b in zip(kept, kept[1:])) or (kept and kept[0] < 0):
        raise ModelLoadError("kept ids must be sorted, unique and non-negative")
    known = set(_pieces(data)) | {tok["id"] for tok in data.get("added_tokens") or []}
    unknown = sorted(set(kept) - known)
    if unknown:
        raise ModelLoadError(f"kept ids {unknown[:10]} are neither pieces nor added tokens of the tokenizer")
    new_id = {old: new for new, old in enumerate(kept)}

    def remap(old: int, where: str) -> int:
        if old not in new_id:
            raise ModelLoadError(f"tokenizer.json: {where} uses id {old}, which is not kept")
        return new_id[old]

    if model["type"] == "Unigram":
        vocab = model["vocab"]
        model["vocab"] = [vocab[i] for i in kept if i < len(vocab)]
        if model.get("unk_id") is not None:
            model["unk_id"] = remap(model["unk_id"], "model.unk_id")
    else:
        model["vocab"] = {t: new_id[i] for t, i in sorted(model["vocab"].items(), key=lambda kv: kv[1]) if i in new_id}
        if model.get("unk_token", "[UNK]") not in model["vocab"]:
            raise ModelLoadError(f"tokenizer.json: WordPiece unk_token {model.get('unk_token')!r} is not kept")
    for tok in data.get("added_tokens") or []:
        tok["id"] = remap(tok["id"], f"added token {tok.get('content')!r}")
    _remap_processor(data.get("post_processor"), remap)
    if data.get("padding"):
        data["padding"]["pad_id"] = remap(data["padding"]["pad_id"], "padding.pad_id")
    return data


def _remap_processor(proc: dict[str, Any] | None, remap) -> None:
    _processor_ids(proc)  # raises on a kind it cannot remap
    if not proc:
        return
    kind = proc["type"]
    if kind == "TemplateProcessing":
        for name, tok in proc.get("special_tokens", {}).items():
            tok["ids"] = [remap(i, f"post_processor special token {name!r}") for i in tok["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("cls", "sep"):
            proc[key] = [proc[key][0], remap(proc[key][1], f"post_processor {key}")]
    elif kind == "Sequence":
        for sub in proc.get("processors", []):
            _remap_processor(sub, remap)


def _check_pruned(data: dict[str, Any], pruned: dict[str, Any], kept: Sequence[int], texts: list[str]) -> None:
    """The pruned JSON loads, its added tokens get the ids written, ``texts`` keep their ids (mapped back)."""
    from tokenizers import Tokenizer

    old_tok, new_tok = Tokenizer.from_str(json.dumps(data)), Tokenizer.from_str(json.dumps(pruned))
    for tok in pruned.get("added_tokens") or []:
        if new_tok.token_to_id(tok["content"]) != tok["id"]:
            raise ModelLoadError(f"pruned tokenizer.json: added token {tok['content']!r} does not get id {tok['id']}")
    for text, old, new in zip(texts, old_tok.encode_batch(texts), new_tok.encode_batch(texts)):
        if [kept[i] for i in new.ids] != old.ids:
            raise ModelLoadError(f"pruned tokenizer encodes {text!r} differently: {new.tokens} != {old.tokens}")


def _embedding_key(tensors: dict[str, np.ndarray], path: Path) -> str:
    keys = [k for k in tensors if k.endswith("word_embeddings.weight")]
    if len(keys) != 1:
        raise ModelLoadError(f"{path}: expected one '*word_embeddings.weight' tensor, found {keys or 'none'}")
    rows = tensors[keys[0]].shape[0]
    heads = [k for k in tensors if k != keys[0] and rows in tensors[k].shape
             and any(w in k for w in ("lm_head", "predictions", "decoder"))]
    if heads:
        raise ModelLoadError(f"{path}: tensors {heads} are indexed by the vocabulary too; only an encoder "
                             "(BertModel / ErnieModel) can be pruned")
    return keys[0]


def corpus_digest(texts: Sequence[str]) -> str:
    """The sha256 a pruned directory's provenance records for its corpus."""
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


def is_pruned_from(out_dir: str | os.PathLike, model_dir: str | os.PathLike, texts: Sequence[str]) -> bool:
    """Whether ``out_dir`` is a complete pruning of ``model_dir`` on exactly ``texts`` (so it can be reused)."""
    provenance = Path(out_dir) / "provenance.json"
    if not provenance.is_file() or not (Path(out_dir) / WEIGHTS).is_file():
        return False
    entry = read_json(provenance).get("pruned", {})
    return (entry.get("source_dir") == str(Path(model_dir).resolve())
            and entry.get("corpus_sha256") == corpus_digest(texts))


def prune_model_dir(model_dir: str | os.PathLike, texts: Iterable[str], out_dir: str | os.PathLike, *,
                    keep_single_chars: bool = True, min_count: int = 1, corpus_name: str = "",
                    progress: bool = True) -> dict[str, Any]:
    """Write to ``out_dir`` (atomically) a copy of the model directory ``model_dir`` whose vocabulary is
    pruned to ``texts`` (see :func:`kept_token_ids`); return a summary of the sizes."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"{model_dir}: model directory not found")
    if out_dir.resolve() == model_dir.resolve():
        raise ModelLoadError(f"{out_dir}: the pruned model must go to another directory than its source")
    for name in (WEIGHTS, CONFIG, TOKENIZER):
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"{model_dir}: no {name}, not a model directory (save_pretrained with "
                                 "safe_serialization=True, plus tokenizer.json)")
    texts = list(texts)
    data = _read_tokenizer_json(model_dir / TOKENIZER)
    config = read_json(model_dir / CONFIG)
    token_keys = [k for k, v in config.items() if k.endswith("_token_id") and isinstance(v, int) and v >= 0]
    outside = [f"{k}={config[k]}" for k in token_keys if config[k] >= tokenizer_size(data)]
    if outside:
        raise ModelLoadError(f"{model_dir / CONFIG}: {', '.join(outside)} outside the tokenizer's ids")
    kept = kept_token_ids(model_dir / TOKENIZER, texts, keep_single_chars=keep_single_chars, min_count=min_count,
                          extra_ids=[config[k] for k in token_keys], progress=progress)
    pruned_json = prune_tokenizer_json(data, kept)

    try:
        with safe_open(model_dir / WEIGHTS, framework="np") as handle:
            metadata = handle.metadata()
        tensors = load_file(model_dir / WEIGHTS)
    except Exception as exc:  # safetensors raises its own error types for a bad header / dtype
        raise ModelLoadError(f"{model_dir / WEIGHTS}: cannot read ({exc})") from None
    key = _embedding_key(tensors, model_dir / WEIGHTS)
    rows = tensors[key].shape[0]
    size = tokenizer_size(data)
    if size > rows:
        raise ModelLoadError(f"{model_dir}: tokenizer.json has {size} ids but {key} only {rows} rows")
    if config.get("vocab_size", rows) != rows:
        raise ModelLoadError(f"{model_dir}: config.json vocab_size {config['vocab_size']} != {rows} rows of {key}")
    tensors[key] = np.ascontiguousarray(tensors[key][np.asarray(kept, dtype=np.int64)])
    new_id = {old: new for new, old in enumerate(kept)}
    config = {**config, "vocab_size": len(kept), **{k: new_id[config[k]] for k in token_keys}}

    _check_pruned(data, pruned_json, kept, texts[:CHECKED] if min_count == 1 else [])

    provenance = read_json(model_dir / PROVENANCE) if (model_dir / PROVENANCE).is_file() else {}
    entry = {"source_dir": str(model_dir.resolve()), "source_sha256": sha256_file(model_dir / WEIGHTS),
             "corpus_name": corpus_name, "corpus_texts": len(texts),
             "corpus_sha256": corpus_digest(texts),
             "kept": len(kept), "original": rows, "keep_single_chars": keep_single_chars, "min_count": min_count}
    if "pruned" in provenance:
        entry["previous"] = provenance["pruned"]
    provenance = {**provenance, "pruned": entry}

    with replace_directory(out_dir) as tmp:
        save_file(tensors, str(tmp / WEIGHTS), metadata=metadata)
        (tmp / CONFIG).write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        (tmp / TOKENIZER).write_text(json.dumps(pruned_json, ensure_ascii=False, indent=2), encoding="utf-8")
        (tmp / PROVENANCE).write_text(json.dumps(provenance, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if (model_dir / VOCAB_TXT).is_file() and pruned_json["model"]["type"] == "WordPiece":
            by_id = {i: t for t, i in pruned_json["model"]["vocab"].items()}
            by_id.update((tok["id"], tok["content"]) for tok in pruned_json.get("added_tokens") or [])
            with open(tmp / VOCAB_TXT, "w", encoding="utf-8", newline="") as handle:
                handle.write("".join(by_id[i] + "\n" for i in range(len(kept))))
        for name in COPIED:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / name)
    handled = {WEIGHTS, CONFIG, TOKENIZER, PROVENANCE, VOCAB_TXT, *COPIED}
    return {"original_vocab": rows, "tokenizer_vocab": size, "kept_vocab": len(kept), "corpus_texts": len(texts),
            "size_bytes_before": (model_dir / WEIGHTS).stat().st_size,
            "size_bytes_after": (out_dir / WEIGHTS).stat().st_size,
            "not_copied": sorted(p.name for p in model_dir.iterdir() if p.name not in handled)}


def _mb(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:,.0f} MB"


def pruning_summary(summary: dict[str, Any]) -> str:
    """One line for the user from :func:`prune_model_dir`'s summary: ``vocabulary pruned to 8,000 texts:
    250,037 → 8,881 pieces (3.6 %), model.safetensors 471 MB → 100 MB``."""
    kept, original = summary["kept_vocab"], summary["original_vocab"]
    texts = f" to {summary['corpus_texts']:,} texts" if "corpus_texts" in summary else ""
    return (f"vocabulary pruned{texts}: {original:,} → {kept:,} pieces ({100 * kept / original:.1f} %), "
            f"{WEIGHTS} {_mb(summary['size_bytes_before'])} → {_mb(summary['size_bytes_after'])}")


def pruned_dir_summary(out_dir: str | os.PathLike) -> str:
    """The same line for a pruned directory written earlier (from its ``provenance.json``)."""
    entry = read_json(Path(out_dir) / PROVENANCE).get("pruned", {})
    kept, original = entry.get("kept"), entry.get("original")
    if not kept or not original:
        return f"pruned vocabulary in {out_dir}"
    return (f"vocabulary pruned to {entry.get('corpus_texts', 0):,} texts: {original:,} → {kept:,} pieces "
            f"({100 * kept / original:.1f} %), {WEIGHTS} {_mb((Path(out_dir) / WEIGHTS).stat().st_size)}")
