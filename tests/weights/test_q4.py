"""Q4_0 (ggml 4-bit) dequantisation on hand-made blocks, and the quantiser used to build test files."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import q4_block

from paddle_tag.errors import ModelLoadError
from paddle_tag.weights.q4 import dequantize_q4_0, q4_0_nbytes, quantize_q4_0

def q4_expected(scale: float, q: list[int]) -> np.ndarray:
    return np.array([(v - 8) * float(np.float16(scale)) for v in q], dtype=np.float32)


def test_dequantize_one_hand_made_block():
    q = [0, 15, 8, 1, 7, 9, 14, 3, 2, 4, 5, 6, 10, 11, 12, 13,
         15, 0, 8, 8, 2, 13, 4, 11, 1, 3, 5, 7, 9, 10, 12, 14]
    raw = q4_block(0.5, q)
    assert len(raw) == 18 and raw[:2] == b"\x00\x38"  # fp16 0.5, little-endian
    assert raw[2] == 0xF0 and raw[3] == 0x0F  # weight 0 (q=0) low / weight 16 (q=15) high; weight 1 / 17
    got = dequantize_q4_0(raw, 1, 32)
    assert got.dtype == np.float32 and got.shape == (1, 32)
    np.testing.assert_array_equal(got[0], q4_expected(0.5, q))
    assert got[0, 0] == -4.0 and got[0, 1] == 3.5 and got[0, 2] == 0.0  # q=0 → -8d, q=15 → 7d, q=8 → 0
    assert got[0, 16] == 3.5 and got[0, 17] == -4.0


def test_dequantize_rows_of_several_blocks():
    rng = np.random.default_rng(1)
    rows, cols = 3, 96  # 3 blocks per row
    scales = [0.25, -1.5, 0.0078125, 3.0, 0.1, 2.0 ** -10, 10.0, -0.375, 1.0]  # all exact in fp16 but 0.1
    qs = [rng.integers(0, 16, 32).tolist() for _ in scales]
    qs[0] = [0] * 16 + [15] * 16
    raw = b"".join(q4_block(s, q) for s, q in zip(scales, qs))
    assert len(raw) == q4_0_nbytes(rows, cols) == rows * 3 * 18
    expected = np.concatenate([q4_expected(s, q) for s, q in zip(scales, qs)]).reshape(rows, cols)
    got = dequantize_q4_0(raw, rows, cols)
    np.testing.assert_array_equal(got, expected)
    assert got[0, 0] == -2.0 and got[0, 31] == 1.75
    assert got[1, 32] == (qs[4][0] - 8) * float(np.float16(0.1))  # row 1, second block: the fp16-rounded 0.1
    # bytes, memoryview and a uint8 array are all accepted
    np.testing.assert_array_equal(dequantize_q4_0(memoryview(raw), rows, cols), expected)
    np.testing.assert_array_equal(dequantize_q4_0(np.frombuffer(raw, np.uint8), rows, cols), expected)


def test_dequantize_refuses_bad_sizes():
    raw = q4_block(1.0, [8] * 32) * 2
    with pytest.raises(ModelLoadError, match="needs 54 bytes, got 36"):
        dequantize_q4_0(raw, 3, 32)
    with pytest.raises(ModelLoadError, match="needs 36 bytes, got 35"):
        dequantize_q4_0(raw[:-1], 2, 32)
    with pytest.raises(ModelLoadError, match="multiple of 32"):
        dequantize_q4_0(raw, 1, 48)


def test_quantize_round_trip_is_within_half_a_step():
    rng = np.random.default_rng(2)
    matrix = rng.normal(0.0, 1.0, (16, 128)).astype(np.float32)
    matrix[3, :32] = 0.0  # an all-zero block: scale 0, exact zeros back
    raw = quantize_q4_0(matrix)
    assert len(raw) == q4_0_nbytes(16, 128)
    back = dequantize_q4_0(raw, 16, 128)
    blocks, back_blocks = matrix.reshape(-1, 32), back.reshape(-1, 32)
    d = np.frombuffer(raw, np.uint8).reshape(-1, 18)[:, :2].copy().view("<f2").astype(np.float32)[:, 0]
    assert np.all(d[blocks.any(axis=1)] != 0)
    error = np.abs(back_blocks - blocks)
    # ggml's Q4_0 takes d = peak / -8, so the block's largest-magnitude weight is q=0 (-8d); a weight of the other
    # sign and nearly the same magnitude would need q=16, which the 4-bit code clips to 15 (7d). Every other
    # weight is within half a step |d| / 2.
    ratio = np.divide(blocks, d[:, None], out=np.zeros_like(blocks), where=d[:, None] != 0)
    clipped = ratio > 7.5
    half = np.broadcast_to(np.abs(d)[:, None] / 2 * (1 + 1e-5) + 1e-7, error.shape)
    assert np.all(error[~clipped] <= half[~clipped])
    assert np.all(error[clipped] <= 2 * half[clipped])
    np.testing.assert_array_equal(back_blocks[clipped], np.broadcast_to(7 * d[:, None], error.shape)[clipped])
    assert clipped.sum() < 0.05 * clipped.size
    np.testing.assert_array_equal(back[3, :32], 0.0)
    # the block's peak comes back up to the fp16 rounding of its scale
    peaks = np.abs(blocks).max(axis=1)
    np.testing.assert_allclose(np.abs(back_blocks).max(axis=1), peaks, rtol=1e-3)
