"""HTTP server: FastAPI + uvicorn in front of a :class:`~deploy.batching.DynamicBatcher`.

``python -m deploy.serve --model-dir D [--device cpu|gpu] [--precision fp32|fp16|int8] [--port 8000]``

One process serves the kind of model its export's manifest says: a tagger on ``POST /predict``, a recommender on
``POST /recommend``, both with ``/health``, ``/ready`` and ``/metrics`` (the routes, their answers and status codes:
:mod:`deploy.app`). This module is the process around the app: the uvicorn server, its flags and signals.
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
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from deploy import DeployError
from deploy.app import Service, create_app
from deploy.cli import add_model_args, non_negative, positive, run_cli, setup_logging
from deploy.connections import (
    BODY_BUFFER,
    ConnectionGuard,
    check_max_connections,
    default_max_connections,
    guarded_socket,
    protocol_class,
    quiet_accept_errors,
    raise_nofile_limit,
)
from deploy.export_dir import RECOMMENDER, manifest_kind
from deploy.http_inputs import HTTPError, ServeSettings, parse_recommend, parse_texts
from deploy.predictor import Predictor
from deploy.recommender import Recommender

__all__ = ["HTTPError", "ServeSettings", "Service", "build_server", "create_app", "parse_recommend", "parse_texts"]

logger = logging.getLogger("deploy.serve")


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
