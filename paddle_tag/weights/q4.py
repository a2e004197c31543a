"""Q4_0 (ggml-style 4-bit) dequantisation.

A Q4_0 row of ``n`` weights is ``n / 32`` blocks of 18 bytes: one little-endian fp16 scale ``d``
and 16 bytes of nibbles. Byte ``j`` of a block holds weight ``j`` in its low nibble and weight
``j + 16`` in its high nibble; a weight is ``(q - 8) * d`` (symmetric, no offset).
"""
from __future__ import annotations

import numpy as np

from paddle_tag.errors import ModelLoadError

QK = 32  # weights per block
BLOCK_BYTES = 2 + QK // 2


def q4_0_nbytes(rows: int, cols: int) -> int:
    """Bytes taken by a ``rows x cols`` Q4_0 matrix."""
    return rows * (cols // QK) * BLOCK_BYTES


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The ``(rows, cols)`` float32 matrix stored as Q4_0 in ``raw`` (row-major, blocks along a row)."""
    if cols % QK:
        raise ModelLoadError(f"Q4_0 rows must be a multiple of {QK} wide, got {cols}")
    buf = np.frombuffer(raw, dtype=np.uint8)
    if buf.size != q4_0_nbytes(rows, cols):
        raise ModelLoadError(f"Q4_0 {rows}x{cols} needs {q4_0_nbytes(rows, cols)} bytes, got {buf.size}")
    blocks = buf.reshape(-1, BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(rows, cols)


def quantize_q4_0(matrix: np.ndarray) -> bytes:
    """Pack a float matrix as Q4_0 (``d = max|w| / 8`` per block, as ggml does); used to build test data."""
    rows, cols = matrix.shape
    if cols % QK:
        raise ValueError(f"columns must be a multiple of {QK}")
    blocks = np.asarray(matrix, dtype=np.float32).reshape(-1, QK)
    index = np.abs(blocks).argmax(axis=1)
    peak = blocks[np.arange(len(blocks)), index]
    scale = (peak / -8.0).astype(np.float16)
    scale32 = scale.astype(np.float32)
    inverse = np.divide(1.0, scale32, out=np.zeros_like(scale32), where=scale32 != 0)  # all-zero block: 0
    q = np.clip(np.round(blocks * inverse[:, None]) + 8, 0, 15).astype(np.uint8)
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    out = np.concatenate([scale.view(np.uint8).reshape(-1, 2), packed], axis=1)
    return out.tobytes()
