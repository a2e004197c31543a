"""The ASGI app of :mod:`deploy.serve`: its routes, input checks and the :class:`Service` each app holds.

A tagger: ``POST /predict`` ``{"texts": [...]}`` → ``{"results": [{"tags", "scores", "truncated"}]}`` (input
order). A recommender: ``POST /recommend`` ``{"history": [item id, ...], "k": 10}`` → ``{"items": [{"id", "score",
"title"}], "unknown", "fallback", "truncated"}`` (:mod:`deploy.recommender`); the other route answers 404. Both:
``GET /health`` (process up); ``GET /ready`` (model warmed up and batch worker running, else 503); ``GET /metrics``
(Prometheus text). Bad input gets a 4xx ``{"error": "..."}`` (415 a body not declared ``application/json``, 408 a
body slower than the read timeout) and never reaches a batch; a model call that raises fails only the request that
caused it (500). A full queue or a draining server gets 503.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from deploy.batching import DynamicBatcher, QueueFullError, ShuttingDownError
from deploy.connections import (
    SCOPE_KEY,
    RateLimitedLog,
)
from deploy.export_dir import RECOMMENDER, TAGGER
from deploy.http_inputs import HTTPError, ServeSettings, check_content_type, parse_recommend, parse_texts
from deploy.metrics import CONTENT_TYPE, Metrics

logger = logging.getLogger("deploy.serve")  # one logger name for the server, whichever module logs
ROUTES = {TAGGER: "/predict", RECOMMENDER: "/recommend"}
WARMUP_TEXTS = ["预热 warm-up"]


class Service:
    """What one app holds: the predictor, the batcher, the metrics and the ready/draining flags."""

    def __init__(self, predictor: Any, settings: ServeSettings) -> None:
        settings.check()
        self.predictor = predictor
        self.kind = getattr(predictor, "kind", TAGGER)
        self.settings = settings
        self.metrics = Metrics()
        self.batcher = DynamicBatcher(predictor.predict, settings.max_batch_size, settings.max_wait_ms,
                                      settings.max_queue, self.metrics)
        self.warmed_up = False
        self.draining = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.metrics.queue_depth = lambda: self.batcher.depth
        self.log = RateLimitedLog(logger, interval=1.0)  # for lines a client can cause at will
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
            await asyncio.to_thread(self.predictor.predict, getattr(self.predictor, "warmup_inputs", WARMUP_TEXTS))
            logger.info("warm-up took %.3f s", time.perf_counter() - start)
        self.warmed_up = True


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _read_body(request: Request, service: Service) -> bytes:
    """The body, within --max-body-bytes (else 413) and --read-timeout (else 408; the connection is closed)."""
    limit, timeout = service.settings.max_body_bytes, service.settings.read_timeout
    try:
        async with asyncio.timeout(timeout):
            return await _read_body_within(request, limit)
    except TimeoutError:
        service.metrics.count_body_timeout()
        raise HTTPError(408, f"the request body did not arrive within --read-timeout {timeout:g} s",
                        {"Connection": "close"}) from None


async def _read_body_within(request: Request, limit: int) -> bytes:
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


def create_app(predictor: Any, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app around ``predictor``: a tagger (``predict(list[str]) -> list[dict]``) or a recommender
    (``kind = "recommender"``, ``predict(list[{"history", "k"}]) -> list[dict]``)."""
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

    app = FastAPI(title=f"paddle_tag {service.kind}", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.service = service

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        return await _answer(request, service, TAGGER)

    @app.post("/recommend")
    async def recommend(request: Request) -> Response:
        return await _answer(request, service, RECOMMENDER)

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


async def _answer(request: Request, service: Service, route_kind: str) -> Response:
    """Answer ``POST /predict`` or ``/recommend`` (4xx/503 as :class:`HTTPError`, 500 on a model failure), timed.

    A client that hangs up before its body arrived is counted (``client_disconnects_total``) and logged in one
    INFO line; it is not a request in ``requests_total``."""
    start = time.perf_counter()
    try:
        if service.kind != route_kind:
            raise HTTPError(404, f"this server serves a {service.kind} export: use POST {ROUTES[service.kind]}")
        check_content_type(request.headers.get("content-type"))
        response: Response = await (_predict if route_kind == TAGGER else _recommend)(request, service)
    except HTTPError as exc:
        response = _error(exc.status, exc.message, exc.headers)
    except ClientDisconnect:
        if not getattr(request.scope.get(SCOPE_KEY), "closed_by_server", False):  # else counted as evicted
            service.metrics.count_client_disconnect()
            client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
            service.log(logging.INFO, "disconnect", "%s: %s disconnected before its request body arrived (%.3f s)",
                        ROUTES[route_kind], client, time.perf_counter() - start)
        return Response(status_code=400)  # never sent: the connection is gone
    except Exception as exc:  # a model failure: answer 500, keep serving
        logger.exception("%s failed", ROUTES[route_kind])
        response = _error(500, f"internal error: {type(exc).__name__}: {exc}")
    service.metrics.observe_request(response.status_code, time.perf_counter() - start)
    return response


def _check_serving(service: Service) -> None:
    """503 while the server is shutting down or not ready yet (before the body is read)."""
    if service.draining:
        raise HTTPError(503, "the server is shutting down", {"Retry-After": "1"})
    if not service.ready:
        raise HTTPError(503, "the model is not ready yet", {"Retry-After": "1"})


async def _submit(service: Service, inputs: list[Any]) -> list[Any]:
    """Queue ``inputs`` for the batch worker and wait for their results (503 when the queue is full)."""
    try:
        return await service.batcher.submit(inputs)
    except (QueueFullError, ShuttingDownError) as exc:
        raise HTTPError(503, str(exc), {"Retry-After": "1"}) from None


async def _predict(request: Request, service: Service) -> Response:
    _check_serving(service)
    texts = parse_texts(await _read_body(request, service), service.settings)
    return JSONResponse({"results": await _submit(service, texts)})


async def _recommend(request: Request, service: Service) -> Response:
    _check_serving(service)
    body = parse_recommend(await _read_body(request, service), service.settings, service.predictor.num_items)
    (result,) = await _submit(service, [body])  # one history is one item of a batch
    return JSONResponse(result)


def _describe(predictor: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"kind": getattr(predictor, "kind", TAGGER)}
    for key in ("device", "precision", "providers", "labels"):
        if hasattr(predictor, key):
            info[key] = getattr(predictor, key)
    if hasattr(predictor, "describe"):
        info.update(predictor.describe())
        return info
    manifest = getattr(predictor, "manifest", None)
    if manifest is not None:
        info.update(model_dir=str(manifest.root), task=manifest.task, max_seq_len=manifest.max_seq_len)
    return info


def _log_warmup_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("warm-up failed; the server stays not ready: %r", task.exception())
