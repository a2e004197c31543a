"""Serve an exported paddle_tag tagger with ONNX Runtime: no Paddle, no PaddleNLP, no paddle_tag.

Modules: :mod:`deploy.manifest` (load + validate an export directory), :mod:`deploy.tokenizer`
(``tokenizers`` WordPiece, truncation and padding), :mod:`deploy.providers` (ONNX Runtime sessions on
CPU or GPU, never a silent fallback), :mod:`deploy.predictor` (texts → tags), :mod:`deploy.batching`
(asyncio dynamic batcher), :mod:`deploy.metrics` (Prometheus text), :mod:`deploy.predict` (CLI) and
:mod:`deploy.serve` (FastAPI + uvicorn). See ``deploy/README.md``.
"""

__all__ = ["DeployError"]


class DeployError(Exception):
    """A user-facing error (bad export directory, unavailable device, bad input): no traceback."""
