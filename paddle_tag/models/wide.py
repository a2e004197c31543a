"""The wide part of a wide & deep tagger (Cheng et al. 2016), fastText-style: hashed character n-grams → one
logit per tag.

Input: ``char_ids`` ``(B, L)`` int64, the Unicode code points of each text, 0-padded (code 0 is padding).
Every n-gram of 1..``ngram_max`` characters is hashed into one of ``buckets`` rows of a ``(buckets, C)`` table;
the text's logits are its n-grams' rows summed with weights ``w`` and divided by ``sqrt(Σ w²)`` — the bag of
n-grams normalised to unit length, as TF-IDF's l2 norm does, so one telling n-gram (a place name) weighs as much
in a long poem as TF-IDF would let it, where fastText's plain average would shrink it with every extra line.
``w`` is 1 per occurrence, or with ``idf`` the n-gram's inverse document frequency in the training texts
(``log((1 + N) / (1 + df)) + 1``, scikit-learn's smoothed idf, counted per bucket by :meth:`fit_idf` and saved
with the weights): rare n-grams then weigh more, and Adam's steps of similar size per row move their logits more.

The hash runs inside the model, so the exported ONNX graph computes it too and deployment passes only code
points: training and serving cannot disagree on an n-gram id or a bucket count. It is exact integer arithmetic
that every runtime computes alike (no overflow, no floating point):
``h(c_1..c_n) = (Σ_j c_j · a_{n,j} + b_n) mod P``, ``P = 2^31 − 1``, ``bucket = h mod buckets``, with fixed odd
multipliers ``a`` and offsets ``b`` per n-gram length (code points < 2^21, multipliers < 2^31: every sum stays
below 2^55). Changing :data:`MULTIPLIERS` changes every trained wide model, so they are part of the format.
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn

PRIME = 2_147_483_647  # 2^31 - 1
MAX_BUCKETS = 1 << 30
#: n → (multiplier of each character position, offset); drawn once from random.Random(20261206)
MULTIPLIERS: dict[int, tuple[tuple[int, ...], int]] = {
    1: ((1278063028,), 1792890044),
    2: ((150662034, 2134354225), 1627015690),
    3: ((583434789, 1406347970, 1861224828), 682996311),
    4: ((1170350606, 1739024623, 1864750308, 1935706130), 747838239),
    5: ((834440170, 1579750890, 527622513, 51315012, 976579452), 1360081439),
}


def _int64(value: int) -> paddle.Tensor:
    return paddle.full([1], value, dtype="int64")


class HashedNgrams(nn.Layer):
    """Sum / √count of the hashed character n-grams' rows of a ``(buckets, num_labels)`` table: ``(B, L)`` →
    ``(B, C)``.

    Args:
        num_labels: tags (columns of the table).
        ngram_max: n-grams of 1..``ngram_max`` characters are read (1..5).
        buckets: rows of the table (2..2^30); more rows, fewer collisions between n-grams.

    The table starts at zero, so a new wide part adds nothing until it has learned.
    """

    def __init__(self, num_labels: int, ngram_max: int = 3, buckets: int = 262144, idf: bool = False):
        super().__init__()
        if ngram_max not in MULTIPLIERS:
            raise ValueError(f"ngram_max must be one of {sorted(MULTIPLIERS)}, got {ngram_max}")
        if not 2 <= buckets <= MAX_BUCKETS:
            raise ValueError(f"buckets must be in 2..{MAX_BUCKETS}, got {buckets}")
        self.ngram_max, self.buckets, self.num_labels = ngram_max, buckets, num_labels
        # sparse: a step's gradient holds only the rows it looked up (see paddle_tag.engine.optim)
        self.table = nn.Embedding(buckets, num_labels, sparse=True, weight_attr=nn.initializer.Constant(0.0))
        self.use_idf = idf
        if idf:  # a buffer, not a parameter: counted from the training texts, saved and exported with the table
            self.register_buffer("idf", paddle.ones([buckets], dtype="float32"), persistable=True)

    def config(self) -> dict:
        """What rebuilds this layer (``model_config.json``)."""
        return {"ngram_max": self.ngram_max, "buckets": self.buckets, "idf": self.use_idf}

    @paddle.no_grad()
    def fit_idf(self, char_rows: list, batch_size: int = 256) -> np.ndarray:
        """Set the idf of every bucket from the training texts' code points (one int64 array per text)."""
        if not self.use_idf:
            raise ValueError("this wide part was built without idf")
        df = np.zeros(self.buckets, dtype=np.int64)
        for start in range(0, len(char_rows), batch_size):
            chunk = char_rows[start:start + batch_size]
            codes = np.zeros((len(chunk), max([self.ngram_max, *(len(r) for r in chunk)])), dtype=np.int64)
            for i, row in enumerate(chunk):
                codes[i, :len(row)] = row
            seen = [set() for _ in chunk]
            for n in range(1, self.ngram_max + 1):
                ids, mask = self.ngram_buckets(paddle.to_tensor(codes), n)
                for i, (row_ids, row_mask) in enumerate(zip(ids.numpy(), mask.numpy())):
                    seen[i].update(row_ids[row_mask > 0].tolist())
            for buckets in seen:
                df[list(buckets)] += 1
        idf = (np.log((1.0 + len(char_rows)) / (1.0 + df)) + 1.0).astype("float32")
        self.idf.set_value(idf)
        return idf

    def ngram_buckets(self, char_ids: paddle.Tensor, n: int) -> tuple[paddle.Tensor, paddle.Tensor]:
        """Bucket ids ``(B, L - n + 1)`` of every n-gram of length ``n`` and its 0/1 mask (1 = inside the text)."""
        length = paddle.shape(char_ids)[1]
        multipliers, offset = MULTIPLIERS[n]
        total, mask = _int64(offset), None
        for j, multiplier in enumerate(multipliers):
            chars = paddle.slice(char_ids, axes=[1], starts=[j], ends=[length - (n - 1 - j)])
            total = total + chars * _int64(multiplier)
            present = (chars > 0).astype("float32")
            mask = present if mask is None else mask * present
        ids = paddle.remainder(paddle.remainder(total, _int64(PRIME)), _int64(self.buckets))
        return ids, mask

    def forward(self, char_ids: paddle.Tensor) -> paddle.Tensor:
        summed, squares = None, None
        for n in range(1, self.ngram_max + 1):
            ids, weights = self.ngram_buckets(char_ids, n)
            if self.use_idf:
                weights = weights * paddle.gather(self.idf, ids.flatten()).reshape(paddle.shape(ids))
            rows = (self.table(ids) * weights.unsqueeze(-1)).sum(axis=1)  # (B, C)
            norm = (weights * weights).sum(axis=1, keepdim=True)
            summed = rows if summed is None else summed + rows
            squares = norm if squares is None else squares + norm
        return summed / paddle.sqrt(squares.clip(min=1.0))  # an empty text: 0
