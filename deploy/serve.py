"""HTTP server: FastAPI + uvicorn in front of a :class:`~deploy.batching.DynamicBatcher`.

``python -m deploy.serve --model-dir D [--device cpu|gpu] [--precision fp32|fp16|int8] [--port 8000]``

One process serves the kind of model its export's manifest says. A tagger: ``POST /predict``
``{"texts": [...]}`` → ``{"results": [{"tags", "scores", "truncated"}]}`` (input order). A recommender:
``POST /recommend`` ``{"history": [item id, ...], "k": 10}`` → ``{"items": [{"id", "score", "title"}],
"unknown", "fallback", "truncated"}`` (:mod:`deploy.recommender`); the other route answers 404.
Both: ``GET /health`` (process up); ``GET /ready`` (model warmed up and batch worker running, else 503);
``GET /metrics`` (Prometheus text). Bad input gets a 4xx ``{"error": "..."}`` (415 a body not declared
``application/json``, 408 a request slower than ``--read-timeout``) and never reaches a batch; a model call that
raises fails only the request that caused it (500). A full queue or a shutting-down server gets 503.
Connections are bounded (:mod:`deploy.connections`): at most ``--max-connections`` open, idle or stalled ones
closed first to make room, a request due within ``--read-timeout``. SIGTERM/SIGINT: stop accepting, finish
in-flight and queued requests, exit 0.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from deploy import DeployError
from deploy.batching import DynamicBatcher, QueueFullError, ShuttingDownError
from deploy.cli import add_model_args, non_negative, positive, run_cli, setup_logging
from deploy.connections import (
    BODY_BUFFER,
    SCOPE_KEY,
    ConnectionGuard,
    RateLimitedLog,
    check_max_connections,
    default_max_connections,
    guarded_socket,
    protocol_class,
    quiet_accept_errors,
    raise_nofile_limit,
)
from deploy.export_dir import RECOMMENDER, TAGGER, manifest_kind
from deploy.http_inputs import HTTPError, ServeSettings, check_content_type, parse_recommend, parse_texts
from deploy.metrics import CONTENT_TYPE, Metrics
from deploy.predictor import Predictor
from deploy.recommender import Recommender

__all__ = ["HTTPError", "ServeSettings", "Service", "build_server", "create_app", "parse_recommend", "parse_texts"]

logger = logging.getLogger("deploy.serve")
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


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` that tells the app when shutdown starts, records the bound port and, with a
    :class:`~deploy.connections.ConnectionGuard`, listens on a guarded socket (bounded connections)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[int | None], None] | None = None,
                 guard: ConnectionGuard | None = None) -> None:
        super().__init__(config)
        self.port: int | None = None
        self.on_started = on_started
        self.guard = guard

    async def serve(self, sockets: list[Any] | None = None) -> None:
        if sockets is None and self.guard is not None:
            if not self.config.loaded:
                self.config.load()
            sockets = [guarded_socket(self.config.bind_socket(), self.guard)]
        await super().serve(sockets=sockets)

    @property
    def service(self) -> Service | None:
        """The app's :class:`Service` (when the app was made by :func:`create_app`)."""
        state = getattr(self.config.app, "state", None)
        return getattr(state, "service", None)

    async def startup(self, sockets: Any = None) -> None:
        quiet_accept_errors(asyncio.get_running_loop())
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
                 access_log: bool = False, graceful_timeout: float | None = 30.0, *,
                 max_connections: int | None = None, keep_alive_timeout: float = 5.0,
                 read_timeout: float | None = None) -> GracefulServer:
    """A :class:`GracefulServer` for ``app`` (not yet running), its connections bounded by a
    :class:`~deploy.connections.ConnectionGuard`: ``max_connections`` (default: what the descriptor limit
    allows), ``read_timeout`` for a request (default: the app's ``ServeSettings.read_timeout``), idle
    kept-alive connections closed after ``keep_alive_timeout``. Always the asyncio loop and the h11 protocol
    (the guard works at their level)."""
    service = getattr(getattr(app, "state", None), "service", None)
    if read_timeout is None:
        read_timeout = service.settings.read_timeout if service is not None else ServeSettings.read_timeout
    if max_connections is None:
        max_connections = default_max_connections()
    check_max_connections(max_connections)
    guard = ConnectionGuard(max_connections, read_timeout,
                            body_limit=service.settings.max_body_bytes if service is not None else BODY_BUFFER)
    if service is not None:
        service.metrics.connections = guard.stats
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            lifespan="on", timeout_graceful_shutdown=graceful_timeout, loop="asyncio",
                            http=protocol_class(guard), timeout_keep_alive=keep_alive_timeout)  # type: ignore[arg-type]
    return GracefulServer(config, guard=guard)


def load_model(args: argparse.Namespace) -> Predictor | Recommender:
    """The export of ``--model-dir`` loaded as what its manifest says it is (a tagger or a recommender)."""
    if manifest_kind(args.model_dir) == RECOMMENDER:
        if args.trt:
            raise DeployError("--trt serves taggers; a recommender's user encoder runs on CUDA or the CPU")
        return Recommender(args.model_dir, args.device, args.precision, args.threads, gpu_id=args.gpu_id,
                           max_batch_size=args.max_batch_size)
    return Predictor(args.model_dir, args.device, args.precision, args.threads, trt=args.trt, gpu_id=args.gpu_id,
                     top_k=args.top_k or 5, max_batch_size=args.max_batch_size, trt_cache_dir=args.trt_cache)


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
    parser.add_argument("--max-history", type=positive, default=10_000,
                        help="recommender: items per history (else 413)")
    parser.add_argument("--graceful-timeout", type=float, default=30.0,
                        help="seconds to let in-flight requests finish on SIGTERM")
    parser.add_argument("--read-timeout", type=float, default=10.0,
                        help="seconds for a request to arrive (else closed, 408 when begun; a body over 64 KiB or "
                             "chunked gets them again)")
    parser.add_argument("--keep-alive-timeout", type=float, default=5.0,
                        help="seconds an idle kept-alive connection stays open")
    parser.add_argument("--max-connections", type=non_negative, default=0,
                        help="open connections at most; beyond, idle or stalled ones are closed first "
                             "(default 0: the file-descriptor limit, raised to its hard limit, less a reserve)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    settings = ServeSettings(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                             max_queue=args.max_queue, max_texts=args.max_texts,
                             max_chars=args.max_chars, max_body_bytes=args.max_body_bytes,
                             max_history=args.max_history, read_timeout=args.read_timeout)
    settings.check()
    if not args.keep_alive_timeout > 0:
        raise DeployError(f"--keep-alive-timeout must be > 0 seconds, got {args.keep_alive_timeout}")
    before, soft, hard = raise_nofile_limit()
    max_connections = args.max_connections or default_max_connections()
    check_max_connections(max_connections)
    logger.info("file descriptors: limit %d (raised from %d, hard limit %d); --max-connections %d", soft, before,
                hard, max_connections)
    predictor = load_model(args)
    server = build_server(create_app(predictor, settings), args.host, args.port, args.log_level,
                          args.access_log, args.graceful_timeout, max_connections=max_connections,
                          keep_alive_timeout=args.keep_alive_timeout)

    # uvicorn re-raises a caught SIGTERM/SIGINT after its graceful shutdown; with these handlers in
    # place that re-raise is a no-op and the process exits 0 instead of dying by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, server.handle_exit)

    def announce(port: int | None) -> None:
        what = (f"recommender, {predictor.num_items} items" if isinstance(predictor, Recommender)
                else f"{predictor.manifest.task}, {len(predictor.labels)} labels")
        print(f"deploy.serve: listening on http://{args.host}:{port} ({what}, {args.device} {args.precision}, "
              f"providers {predictor.providers})", file=sys.stderr, flush=True)

    server.on_started = announce
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
