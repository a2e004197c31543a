"""HTTP server: FastAPI + uvicorn in front of a :class:`~deploy.batching.DynamicBatcher`.

``python -m deploy.serve --model-dir D [--device cpu|gpu] [--precision fp32|fp16|int8] [--port 8000]``

Endpoints: ``POST /predict`` ``{"texts": [...]}`` → ``{"results": [{"tags", "scores", "truncated"}]}``
(input order); ``GET /health`` (process up); ``GET /ready`` (model warmed up and batch worker running,
else 503); ``GET /metrics`` (Prometheus text). Bad input gets a 4xx ``{"error": "..."}``; a full queue
or a shutting-down server gets 503. SIGTERM/SIGINT: stop accepting, finish in-flight and queued
requests, exit 0.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from deploy import DeployError
from deploy.batching import DynamicBatcher, QueueFullError, ShuttingDownError
from deploy.cli import add_model_args, positive, run_cli, setup_logging
from deploy.metrics import CONTENT_TYPE, Metrics
from deploy.predictor import Predictor

logger = logging.getLogger("deploy.serve")


@dataclass(frozen=True)
class ServeSettings:
    """Batching and request limits of one server."""

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    max_texts: int = 64
    max_chars: int = 10_000
    max_body_bytes: int = 4 << 20
    warmup: bool = True

    def check(self) -> None:
        """Raise :class:`DeployError` on settings that cannot work together."""
        for name in ("max_batch_size", "max_queue", "max_texts", "max_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise DeployError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise DeployError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms}")
        if self.max_texts > self.max_queue:
            raise DeployError(f"--max-texts ({self.max_texts}) must not exceed --max-queue "
                              f"({self.max_queue}): such a request could never be queued")


class HTTPError(Exception):
    """A request error answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class Service:
    """What one app holds: the predictor, the batcher, the metrics and the ready/draining flags."""

    def __init__(self, predictor: Any, settings: ServeSettings) -> None:
        settings.check()
        self.predictor = predictor
        self.settings = settings
        self.metrics = Metrics()
        self.batcher = DynamicBatcher(predictor.predict, settings.max_batch_size, settings.max_wait_ms,
                                      settings.max_queue, self.metrics)
        self.warmed_up = False
        self.draining = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.metrics.queue_depth = lambda: self.batcher.depth
        self.metrics.ready = lambda: self.ready

    @property
    def ready(self) -> bool:
        """Warmed up, worker running, not shutting down."""
        return self.warmed_up and self.batcher.running and not self.draining

    def begin_drain(self) -> None:
        """Shutdown is starting: /ready turns 503, new predictions 503, queued work runs at once.

        Safe to call from any thread or a signal handler.
        """
        self.draining = True
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.batcher.drain)

    async def warm_up(self) -> None:
        """One real prediction in the worker thread, then mark ready."""
        if self.settings.warmup:
            start = time.perf_counter()
            await asyncio.to_thread(self.predictor.predict, ["预热 warm-up"])
            logger.info("warm-up took %.3f s", time.perf_counter() - start)
        self.warmed_up = True


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPError(400, f"invalid Content-Length {declared!r}") from None
        if size > limit:
            raise HTTPError(413, f"body of {size} bytes exceeds --max-body-bytes {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"body exceeds --max-body-bytes {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_texts(body: bytes, settings: ServeSettings) -> list[str]:
    """Validate a ``POST /predict`` body; return its texts or raise :class:`HTTPError` (400/413/422)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise HTTPError(400, f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise HTTPError(422, f'body must be a JSON object {{"texts": [...]}}, got {type(doc).__name__}')
    unknown = sorted(set(doc) - {"texts"})
    if unknown:
        raise HTTPError(422, f"unknown field(s) {unknown}; the body takes only 'texts'")
    if "texts" not in doc:
        raise HTTPError(422, "missing field 'texts' (a list of strings)")
    texts = doc["texts"]
    if not isinstance(texts, list):
        raise HTTPError(422, f"'texts' must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise HTTPError(422, "'texts' is empty; send at least one text")
    if len(texts) > settings.max_texts:
        raise HTTPError(413, f"too many texts: {len(texts)} > --max-texts {settings.max_texts}; "
                             "split the request")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise HTTPError(422, f"texts[{i}] must be a string, got {type(text).__name__}")
        if not text.strip():
            raise HTTPError(422, f"texts[{i}] is empty or whitespace only")
        if len(text) > settings.max_chars:
            raise HTTPError(413, f"texts[{i}] has {len(text)} characters, more than --max-chars "
                                 f"{settings.max_chars}")
    return texts


def create_app(predictor: Any, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app around ``predictor`` (anything with ``predict(list[str]) -> list[dict]``)."""
    service = Service(predictor, settings or ServeSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.loop = asyncio.get_running_loop()
        await service.batcher.start()
        warm = asyncio.create_task(service.warm_up())
        warm.add_done_callback(_log_warmup_failure)
        try:
            yield
        finally:
            service.draining = True
            if not warm.done():
                await asyncio.wait([warm])
            await service.batcher.close()  # queued and in-flight work finishes first
            logger.info("batch worker stopped")

    app = FastAPI(title="paddle_tag tagger", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.service = service

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        start = time.perf_counter()
        try:
            response: Response = await _predict(request, service)
        except HTTPError as exc:
            response = _error(exc.status, exc.message, exc.headers)
        except Exception as exc:  # a model failure: answer 500, keep serving
            logger.exception("predict failed")
            response = _error(500, f"internal error: {type(exc).__name__}: {exc}")
        service.metrics.observe_request(response.status_code, time.perf_counter() - start)
        return response

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        if service.ready:
            info = {"status": "ready"}
            info.update(_describe(service.predictor))
            return JSONResponse(info)
        status = "draining" if service.draining else "loading"
        return JSONResponse({"status": status}, status_code=503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    return app


async def _predict(request: Request, service: Service) -> Response:
    if service.draining:
        raise HTTPError(503, "the server is shutting down", {"Retry-After": "1"})
    if not service.ready:
        raise HTTPError(503, "the model is not ready yet", {"Retry-After": "1"})
    texts = parse_texts(await _read_body(request, service.settings.max_body_bytes), service.settings)
    try:
        results = await service.batcher.submit(texts)
    except QueueFullError as exc:
        raise HTTPError(503, str(exc), {"Retry-After": "1"}) from None
    except ShuttingDownError as exc:
        raise HTTPError(503, str(exc), {"Retry-After": "1"}) from None
    return JSONResponse({"results": results})


def _describe(predictor: Any) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for key in ("device", "precision", "providers", "labels"):
        if hasattr(predictor, key):
            info[key] = getattr(predictor, key)
    manifest = getattr(predictor, "manifest", None)
    if manifest is not None:
        info.update(model_dir=str(manifest.root), task=manifest.task, max_seq_len=manifest.max_seq_len)
    return info


def _log_warmup_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("warm-up failed; the server stays not ready: %r", task.exception())


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` that tells the app when shutdown starts and records the bound port."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[int | None], None] | None = None) -> None:
        super().__init__(config)
        self.port: int | None = None
        self.on_started = on_started

    @property
    def service(self) -> Service | None:
        """The app's :class:`Service` (when the app was made by :func:`create_app`)."""
        state = getattr(self.config.app, "state", None)
        return getattr(state, "service", None)

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.servers and self.servers[0].sockets:
            self.port = self.servers[0].sockets[0].getsockname()[1]
        if self.started and self.on_started is not None:
            self.on_started(self.port)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.service is not None:
            self.service.begin_drain()
        super().handle_exit(sig, frame)


def build_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                 access_log: bool = False, graceful_timeout: float | None = 30.0) -> GracefulServer:
    """A :class:`GracefulServer` for ``app`` (not yet running)."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            lifespan="on", timeout_graceful_shutdown=graceful_timeout)
    return GracefulServer(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (0 = any free port)")
    parser.add_argument("--max-batch-size", type=positive, default=32, help="texts per model call")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="how long a waiting text may wait for its batch to fill")
    parser.add_argument("--max-queue", type=positive, default=256,
                        help="texts waiting at most; beyond that requests get 503 at once")
    parser.add_argument("--max-texts", type=positive, default=64, help="texts per request (else 413)")
    parser.add_argument("--max-chars", type=positive, default=10_000, help="characters per text (else 413)")
    parser.add_argument("--max-body-bytes", type=positive, default=4 << 20, help="request body size (else 413)")
    parser.add_argument("--graceful-timeout", type=float, default=30.0,
                        help="seconds to let in-flight requests finish on SIGTERM")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    settings = ServeSettings(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                             max_queue=args.max_queue, max_texts=args.max_texts,
                             max_chars=args.max_chars, max_body_bytes=args.max_body_bytes)
    settings.check()
    predictor = Predictor(args.model_dir, args.device, args.precision, args.threads, trt=args.trt,
                          gpu_id=args.gpu_id, top_k=args.top_k, max_batch_size=args.max_batch_size,
                          trt_cache_dir=args.trt_cache)
    server = build_server(create_app(predictor, settings), args.host, args.port, args.log_level,
                          args.access_log, args.graceful_timeout)

    # uvicorn re-raises a caught SIGTERM/SIGINT after its graceful shutdown; with these handlers in
    # place that re-raise is a no-op and the process exits 0 instead of dying by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, server.handle_exit)

    def announce(port: int | None) -> None:
        print(f"deploy.serve: listening on http://{args.host}:{port} ({predictor.manifest.task}, "
              f"{len(predictor.labels)} labels, {args.device} {args.precision}, providers "
              f"{predictor.providers})", file=sys.stderr, flush=True)

    server.on_started = announce
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
