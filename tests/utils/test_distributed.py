"""gather_with_grad in one process (identity) and in two real CPU ranks (gloo) under paddle.distributed.launch:
the gathered values, and gradients that add up every rank's loss (the global-batch gradient).

Run as a script, this file is the worker that the two-rank test launches.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddle_tag.losses import InfoNCELoss, NTXentLoss
from paddle_tag.utils.distributed import gather_with_grad, is_distributed, rank_offset

WORLD, BATCH, DIM, TEMPERATURE = 2, 3, 4, 0.2
RNG = np.random.RandomState(0)
QUERY, KEY, VIEW0, VIEW1, WEIGHTS = (RNG.randn(WORLD * BATCH, DIM).astype("float32") for _ in range(5))


def shard(array: np.ndarray, rank: int) -> np.ndarray:
    return array[rank * BATCH:(rank + 1) * BATCH]


def test_single_process_gather_is_identity_with_gradient():
    x = paddle.to_tensor(shard(QUERY, 0), stop_gradient=False)
    gathered = gather_with_grad(x)
    assert gathered is x and not is_distributed() and rank_offset(BATCH) == 0
    (gathered * paddle.to_tensor(shard(WEIGHTS, 0))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), shard(WEIGHTS, 0))


def test_rank_offset_rejects_negative_batch():
    with pytest.raises(ValueError, match="batch_size must be >= 0"):
        rank_offset(-1)


def worker(out_dir: str) -> None:
    """One rank: gather, InfoNCE and NT-Xent on this rank's shard; values and gradients saved for the test."""
    paddle.set_device("cpu")
    paddle.distributed.init_parallel_env()
    rank = paddle.distributed.get_rank()
    x = paddle.to_tensor(shard(QUERY, rank), stop_gradient=False)
    gathered = gather_with_grad(x)
    (gathered * paddle.to_tensor(WEIGHTS)).sum().backward()
    result = {"world": paddle.distributed.get_world_size(), "distributed": is_distributed(),
              "offset": rank_offset(BATCH), "gathered": gathered.numpy(), "gather_grad": x.grad.numpy()}
    tensors = [paddle.to_tensor(shard(a, rank), stop_gradient=False) for a in (QUERY, KEY, VIEW0, VIEW1)]
    infonce = InfoNCELoss(TEMPERATURE)(tensors[0], tensors[1])
    ntxent = NTXentLoss(TEMPERATURE)(tensors[2], tensors[3])
    (infonce + ntxent).backward()
    result.update(infonce=infonce.numpy(), ntxent=ntxent.numpy(),
                  **{name: t.grad.numpy() for name, t in zip(("query", "key", "view0", "view1"), tensors)})
    np.savez(Path(out_dir) / f"rank{rank}.npz", **result)


def local_infonce(rank: int) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """Rank ``rank``'s loss computed in this one process: its queries against every key; (loss, query, keys)."""
    query = paddle.to_tensor(shard(QUERY, rank), stop_gradient=False)
    keys = paddle.to_tensor(KEY, stop_gradient=False)
    logits = F.normalize(query, axis=1) @ F.normalize(keys, axis=1).T / TEMPERATURE
    loss = F.cross_entropy(logits, paddle.arange(rank * BATCH, (rank + 1) * BATCH, dtype="int64"))
    loss.backward()
    return loss, query, keys


def local_ntxent(rank: int) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """Rank ``rank``'s NT-Xent rows of the full (2N, 2N) similarity matrix; (loss, view0, view1) of all N."""
    n = WORLD * BATCH
    view0 = paddle.to_tensor(VIEW0, stop_gradient=False)
    view1 = paddle.to_tensor(VIEW1, stop_gradient=False)
    z = F.normalize(paddle.concat([view0, view1]), axis=1)
    sims = (z @ z.T / TEMPERATURE) - paddle.eye(2 * n) * 1e9
    rows = np.concatenate([np.arange(rank * BATCH, (rank + 1) * BATCH)] * 2) + np.repeat([0, n], BATCH)
    loss = F.cross_entropy(sims[paddle.to_tensor(rows)], paddle.to_tensor((rows + n) % (2 * n)))
    loss.backward()
    return loss, view0, view1


def summed_over_ranks(local_loss) -> tuple[float, list[np.ndarray]]:
    """Each rank's loss, and the gradients of the sum of all ranks' losses (what the gather must deliver)."""
    losses, grads = [], None
    for rank in range(WORLD):
        loss, *tensors = local_loss(rank)
        losses.append(float(loss))
        parts = [t.grad.numpy() for t in tensors]
        grads = parts if grads is None else [g + p for g, p in zip(grads, parts)]
    return losses, grads


def test_two_cpu_ranks_gather_with_gradients_from_every_rank(tmp_path):
    script = Path(__file__).resolve()
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(WORLD),
               "--log_dir", str(tmp_path / "log"), str(script), str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          cwd=script.parents[2], env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    logs = "".join(p.read_text(errors="replace")[-3000:] for p in sorted((tmp_path / "log").glob("workerlog.*")))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(WORLD)]
    full_infonce = float(InfoNCELoss(TEMPERATURE)(paddle.to_tensor(QUERY), paddle.to_tensor(KEY)))
    full_ntxent = float(NTXentLoss(TEMPERATURE)(paddle.to_tensor(VIEW0), paddle.to_tensor(VIEW1)))
    infonce_losses, (_, key_grad) = summed_over_ranks(local_infonce)
    ntxent_losses, (view0_grad, view1_grad) = summed_over_ranks(local_ntxent)
    for rank, got in enumerate(ranks):
        assert (int(got["world"]), bool(got["distributed"]), int(got["offset"])) == (WORLD, True, rank * BATCH)
        np.testing.assert_array_equal(got["gathered"], QUERY)  # (WORLD * BATCH, DIM), in rank order
        # both ranks' losses used this shard with the same weights: their gradients add up
        np.testing.assert_allclose(got["gather_grad"], WORLD * shard(WEIGHTS, rank), rtol=1e-6)
        loss, query, _ = local_infonce(rank)
        assert float(got["infonce"]) == pytest.approx(infonce_losses[rank], rel=1e-5)
        np.testing.assert_allclose(got["query"], query.grad.numpy(), rtol=1e-4, atol=1e-6)  # queries stay local
        np.testing.assert_allclose(got["key"], shard(key_grad, rank), rtol=1e-4, atol=1e-6)
        assert float(got["ntxent"]) == pytest.approx(ntxent_losses[rank], rel=1e-5)
        np.testing.assert_allclose(got["view0"], shard(view0_grad, rank), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got["view1"], shard(view1_grad, rank), rtol=1e-4, atol=1e-6)
    # every rank sees all WORLD * BATCH negatives, so the mean of the rank losses is the full-batch loss
    assert np.mean([float(r["infonce"]) for r in ranks]) == pytest.approx(full_infonce, rel=1e-5)
    assert np.mean([float(r["ntxent"]) for r in ranks]) == pytest.approx(full_ntxent, rel=1e-5)


if __name__ == "__main__":
    worker(sys.argv[1])
