"""Servers for the deploy tests: ``python -m deploy.serve`` as a real subprocess (start, find its port, stop), and
a predictor wrapper that records and can fail model calls."""
from __future__ import annotations

import http.client
import json
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def start_server(args: list, env: dict, nofile: int | None = None) -> tuple[subprocess.Popen, list[str], int]:
    """``python -m deploy.serve`` with stderr read in a thread (and RLIMIT_NOFILE set to ``nofile``)."""
    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen([sys.executable, "-m", "deploy.serve", "--port", "0", "--threads", "1", *map(str, args)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=limit)
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "listening on http://" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    found.wait(60)
    port = 0
    for line in lines:
        if "listening on http://" in line:
            port = int(line.split("listening on http://", 1)[1].split()[0].rsplit(":", 1)[1])
    if not port:
        proc.kill()
        proc.wait(10)
        pytest.fail("the server did not start:\n" + "".join(lines))
    return proc, lines, port


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class Recorder:
    """The real predictor; records the size of every model call, raises on texts holding ``poison``."""

    def __init__(self, inner, poison: str | None = None) -> None:
        self.inner = inner
        self.poison = poison
        self.calls: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, texts):
        if texts != ["预热 warm-up"]:
            self.calls.append(len(texts))
        if self.poison is not None and any(self.poison in t for t in texts):
            raise RuntimeError(f"model exploded on {self.poison}")
        return self.inner.predict(texts)


CHUNKED = (b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"tex\r\n")


def post_at_once(port: int, bodies: list[bytes], timeout: float = 30.0) -> list[tuple[int, dict]]:
    """POST each body to /predict from its own thread, all released together; (status, JSON) in order."""
    results: list = [None] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            barrier.wait(timeout)
            conn.request("POST", "/predict", bodies[i], {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            try:
                results[i] = (resp.status, json.loads(data))
            except ValueError:
                results[i] = (resp.status, {"error": data.decode("utf-8", "replace")})
        finally:
            conn.close()

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a client hung"
    return results
