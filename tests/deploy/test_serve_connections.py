"""The server under stalled, idle and excess connections: one client must not exhaust the server or starve others.

A REAL uvicorn on 127.0.0.1 (in a thread, or ``python -m deploy.serve`` in a subprocess where the process's
file-descriptor limit matters) with the real tiny model: stalled connections (silent, partial headers, partial
body) one by one and 300 at once against a server with a 256-descriptor limit, the connection cap with every
connection busy, then 64 clients at once (no 5xx but 503, /health answers throughout).
"""
from __future__ import annotations

import http.client
import json
import os
import selectors
import socket
import threading
import time
from pathlib import Path

import pytest
from server_process import CHUNKED, Recorder, post_at_once, start_server, stop_server

# ---- 4. stalled connections are timed out ----

STALLS = {
    "silent": b"",
    "partial headers": b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Ty",
    "partial body": (b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"texts\": ["),
}


def open_stalled(port: int, kind: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if STALLS[kind]:
        sock.sendall(STALLS[kind])
    sock.setblocking(False)
    return sock


def wait_all_closed(socks: list[socket.socket], timeout: float) -> dict[socket.socket, tuple[bytes, float]]:
    """Read every socket until the server closes it (EOF or reset); {sock: (bytes read, seconds)} for the
    closed ones, waiting at most ``timeout``."""
    start = time.monotonic()
    sel = selectors.DefaultSelector()
    data: dict[socket.socket, bytearray] = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        data[s] = bytearray()
    closed: dict[socket.socket, tuple[bytes, float]] = {}
    while len(closed) < len(socks) and time.monotonic() - start < timeout:
        for key, _ in sel.select(0.05):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:  # reset
                chunk = b""
            if chunk:
                data[s] += chunk
            else:
                closed[s] = (bytes(data[s]), time.monotonic() - start)
                sel.unregister(s)
    sel.close()
    return closed


def test_stalled_connections_are_closed_after_the_read_timeout(mc_predictor, serve_live):
    """Silent, partial headers, partial body, a chunked body the app is reading and an idle keep-alive connection:
    each closed on time, with a 408 where a request had begun."""
    with serve_live(mc_predictor, read_timeout=1.0, server_options={"keep_alive_timeout": 1}) as (_srv, client):
        socks = {kind: open_stalled(client.port, kind) for kind in STALLS}
        socks["chunked body"] = socket.create_connection(("127.0.0.1", client.port), timeout=10)
        socks["chunked body"].sendall(CHUNKED)
        socks["chunked body"].setblocking(False)
        keep_alive = socket.create_connection(("127.0.0.1", client.port), timeout=10)
        keep_alive.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        response = b""
        while not response.endswith(b'{"status":"ok"}'):
            response += keep_alive.recv(65536)
        assert response.startswith(b"HTTP/1.1 200")
        keep_alive.setblocking(False)
        closed = wait_all_closed([*socks.values(), keep_alive], 6.0)
        try:
            assert len(closed) == 5, "stalled connections were never closed"
            for data, seconds in closed.values():
                assert 0.7 < seconds < 3.0, (data, seconds)
            assert closed[socks["silent"]][0] == b""
            for kind in ("partial headers", "partial body", "chunked body"):
                head, _, body = closed[socks[kind]][0].partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower(), kind
                assert "did not arrive within --read-timeout 1 s" in json.loads(body)["error"], kind
            assert closed[keep_alive][0] == b""
        finally:
            for s in [*socks.values(), keep_alive]:
                s.close()
        metrics = client.metrics()
        assert metrics['paddle_tag_read_timeouts_total{phase="request"}'] == 3  # held by the server: never in the app
        assert metrics['paddle_tag_read_timeouts_total{phase="body"}'] == 1  # the chunked body, read by the app
        assert metrics['paddle_tag_requests_total{status="408"}'] == 1


class Slow(Recorder):
    def __init__(self, inner, delay: float) -> None:
        super().__init__(inner)
        self.delay = delay

    def predict(self, texts):
        if texts != ["预热 warm-up"]:
            time.sleep(self.delay)
        return super().predict(texts)


def test_at_the_cap_busy_connections_are_kept_and_a_new_one_is_refused_with_503(mc_predictor, serve_live, poll):
    """--max-connections 2, both connections waiting for the model: a third connection gets 503 and is closed;
    the two busy ones are answered, and once they are done new connections are served again."""
    with serve_live(Slow(mc_predictor, 1.0), max_batch_size=1, max_wait_ms=0,
                    server_options={"max_connections": 2}) as (srv, client):
        bodies = [json.dumps({"texts": ["球赛"]}).encode()] * 2
        results: list = []
        sender = threading.Thread(target=lambda: results.extend(post_at_once(client.port, bodies)), daemon=True)
        sender.start()
        assert poll(lambda: srv.guard.stats()["open"] == 2 and all(c.busy for c in srv.guard.held), 10)
        third = socket.create_connection(("127.0.0.1", client.port), timeout=10)
        data = b""
        while chunk := third.recv(65536):
            data += chunk
        third.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in head.lower()
        assert "--max-connections 2" in json.loads(body)["error"]
        sender.join(30)
        assert [status for status, _ in results] == [200, 200]
        assert client.json("GET", "/health") == (200, {"status": "ok"})
        metrics = client.metrics()
        assert metrics["paddle_tag_connections_refused_total"] == 1
        assert metrics["paddle_tag_connections_evicted_total"] == 0


def timed_health(port: int) -> tuple[int, float]:
    t0 = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        conn.request("GET", "/health")
        status = conn.getresponse().status
        conn.close()
    except OSError:
        status = 0
    return status, time.monotonic() - t0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts the server's descriptors in /proc")
def test_300_stalled_connections_cost_bounded_descriptors_and_health_answers(mc_export, child_env, client_cls,
                                                                               poll):
    """A server limited to 256 descriptors, --max-connections 64: 300 stalled sockets (silent, partial headers,
    partial body) never exhaust its descriptors, /health answers within 1 s throughout, every stalled socket is
    closed within the read timeout, and the log stays small."""
    proc, lines, port = start_server(["--model-dir", mc_export, "--max-connections", 64, "--read-timeout", 2,
                                      "--keep-alive-timeout", 1], child_env, nofile=256)
    socks: list[socket.socket] = []
    try:
        client = client_cls(port)
        assert poll(lambda: client.request("GET", "/ready")[0] == 200, 20)
        baseline = open_fds(proc.pid)
        log_before = sum(map(len, lines))
        kinds = list(STALLS)
        for i in range(300):
            socks.append(open_stalled(port, kinds[i % 3]))
        opened = time.monotonic()
        health, fds = [], []
        for _ in range(5):
            health.append(timed_health(port))
            fds.append(open_fds(proc.pid))
            time.sleep(0.1)
        assert all(status == 200 and seconds < 1.0 for status, seconds in health), health
        assert max(fds) <= baseline + 64 + 8 + 4, (baseline, fds)  # the cap, its headroom, a few spare
        closed = wait_all_closed(socks, 2.0 + 4.0 - (time.monotonic() - opened))
        assert len(closed) == 300, f"{300 - len(closed)} stalled sockets still open after the read timeout"
        assert timed_health(port)[0] == 200
        metrics = client.metrics()
        assert metrics["paddle_tag_connections_evicted_total"] >= 300 - 64
        assert not any(k.startswith('paddle_tag_requests_total{status="5') for k in metrics)
        log = "".join(lines)
        assert "Too many open files" not in log and "Traceback" not in log, log[-3000:]
        assert sum(map(len, lines)) - log_before < 20_000
    finally:
        for s in socks:
            s.close()
        stop_server(proc)


# ---- overload: 64 clients at once, /health answers throughout ----

def test_64_concurrent_clients_get_no_5xx_but_503_and_health_answers(mc_export, child_env):
    proc, lines, port = start_server(["--model-dir", mc_export, "--max-batch-size", 8, "--max-queue", 16,
                                      "--max-texts", 4, "--max-wait-ms", 2], child_env)
    statuses: dict[int, int] = {}
    errors: list[str] = []
    health: list[tuple[int, float]] = []
    lock = threading.Lock()
    stop = time.monotonic() + 3.0
    try:
        def hammer(i: int) -> None:
            body = json.dumps({"texts": [f"球赛{i}", "股市", "芯片", "电影"][:1 + i % 4]}).encode()
            while time.monotonic() < stop:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                    status = conn.getresponse().status
                    conn.close()
                except OSError as exc:
                    with lock:
                        errors.append(repr(exc))
                    continue
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

        threads = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(64)]
        for t in threads:
            t.start()
        while time.monotonic() < stop:
            health.append(timed_health(port))
            time.sleep(0.1)
        for t in threads:
            t.join(15)
            assert not t.is_alive()
    finally:
        stop_server(proc)
    assert not errors, errors[:5]
    assert statuses.get(200, 0) > 0 and set(statuses) <= {200, 503}, statuses
    assert len(health) >= 10 and all(status == 200 and seconds < 1.0 for status, seconds in health), health
    assert "Traceback" not in "".join(lines)
