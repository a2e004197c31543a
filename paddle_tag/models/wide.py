"""The wide part of a wide & deep tagger (Cheng et al. 2016), fastText-style: hashed character n-grams → one
logit per tag.

Input: ``char_ids`` ``(B, L)`` int64, the Unicode code points of each text, 0-padded (code 0 is padding).
Every n-gram of 1..``ngram_max`` characters is hashed into one of ``buckets`` rows of a ``(buckets, C)`` table;
the text's logits are the mean of its n-grams' rows (a bag of n-grams, like fastText's average).

The hash runs inside the model, so the exported ONNX graph computes it too and deployment passes only code
points: training and serving cannot disagree on an n-gram id or a bucket count. It is exact integer arithmetic
that every runtime computes alike (no overflow, no floating point):
``h(c_1..c_n) = (Σ_j c_j · a_{n,j} + b_n) mod P``, ``P = 2^31 − 1``, ``bucket = h mod buckets``, with fixed odd
multipliers ``a`` and offsets ``b`` per n-gram length (code points < 2^21, multipliers < 2^31: every sum stays
below 2^55). Changing :data:`MULTIPLIERS` changes every trained wide model, so they are part of the format.
"""
from __future__ import annotations

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
    """Mean of the hashed character n-grams' rows of a ``(buckets, num_labels)`` table: ``(B, L)`` → ``(B, C)``.

    Args:
        num_labels: tags (columns of the table).
        ngram_max: n-grams of 1..``ngram_max`` characters are read (1..5).
        buckets: rows of the table (2..2^30); more rows, fewer collisions between n-grams.

    The table starts at zero, so a new wide part adds nothing until it has learned.
    """

    def __init__(self, num_labels: int, ngram_max: int = 3, buckets: int = 262144):
        super().__init__()
        if ngram_max not in MULTIPLIERS:
            raise ValueError(f"ngram_max must be one of {sorted(MULTIPLIERS)}, got {ngram_max}")
        if not 2 <= buckets <= MAX_BUCKETS:
            raise ValueError(f"buckets must be in 2..{MAX_BUCKETS}, got {buckets}")
        self.ngram_max, self.buckets, self.num_labels = ngram_max, buckets, num_labels
        self.table = nn.Embedding(buckets, num_labels, weight_attr=nn.initializer.Constant(0.0))

    def config(self) -> dict:
        """What rebuilds this layer (``model_config.json``)."""
        return {"ngram_max": self.ngram_max, "buckets": self.buckets}

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
        summed, count = None, None
        for n in range(1, self.ngram_max + 1):
            ids, mask = self.ngram_buckets(char_ids, n)
            rows = (self.table(ids) * mask.unsqueeze(-1)).sum(axis=1)  # (B, C)
            found = mask.sum(axis=1, keepdim=True)
            summed = rows if summed is None else summed + rows
            count = found if count is None else count + found
        return summed / count.clip(min=1.0)
