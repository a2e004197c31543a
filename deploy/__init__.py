"""Serve paddle_tag exports (taggers and recommenders) with ONNX Runtime: no Paddle, no PaddleNLP, no paddle_tag.

Modules: :mod:`deploy.export_dir` and :mod:`deploy.manifest` (load + validate an export directory against its
checksums), :mod:`deploy.tokenizer` (``tokenizers`` WordPiece, truncation and padding), :mod:`deploy.providers`
(ONNX Runtime sessions on CPU or GPU, never a silent fallback), :mod:`deploy.predictor` (texts → tags),
:mod:`deploy.recommender` and :mod:`deploy.item_index` (history → items, faiss search), :mod:`deploy.batching`
(asyncio dynamic batcher), :mod:`deploy.http_inputs` (request checks), :mod:`deploy.metrics` (Prometheus text),
:mod:`deploy.predict` (CLI), :mod:`deploy.app` (the HTTP routes), :mod:`deploy.connections` (bounded
connections and read timeouts) and :mod:`deploy.serve` (the uvicorn server process). See ``deploy/README.md``.
"""

__all__ = ["DeployError"]


class DeployError(Exception):
    """A user-facing error (bad export directory, unavailable device, bad input): no traceback."""
