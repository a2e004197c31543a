"""Issue 17, the server: one client must never break other clients' requests or the server itself.

Each test is one attack from the issue, against a REAL uvicorn on 127.0.0.1 (in a thread, or ``python -m
deploy.serve`` in a subprocess where the process's file-descriptor limit matters) running the real tiny model:
a lone surrogate in the JSON, a batch whose model call raises, stalled connections (silent, partial headers,
partial body) one by one and 300 at once against a server with a 256-descriptor limit, the connection cap with
every connection busy, a client that hangs up mid-body, a wrong Content-Type; then 64 clients at once (no 5xx but
503, /health answers throughout). SIGTERM with requests in flight is tested in test_serve.py
(test_graceful_shutdown_finishes_in_flight_requests, test_serve_cli_sigterm_drains_and_exits_0).
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deploy.http_inputs import HTTPError, ServeSettings, parse_recommend, parse_texts

REPO = Path(__file__).resolve().parents[2]


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


# ---- 3. a lone surrogate: refused alone, before it joins a batch ----

def test_a_lone_surrogate_is_a_422_and_breaks_no_other_request(mc_predictor, serve_live):
    recorder = Recorder(mc_predictor)
    with serve_live(recorder, max_batch_size=16, max_wait_ms=400, max_queue=64, max_texts=8) as (_srv, client):
        good = [json.dumps({"texts": [f"第{i}场球赛"]}).encode() for i in range(6)]
        bad = b'{"texts": ["\\ud800abc"]}'  # a lone surrogate escape: valid JSON, not valid Unicode text
        results = post_at_once(client.port, good + [bad])
        assert [status for status, _ in results[:6]] == [200] * 6, results
        assert all(body["results"][0]["tags"] == ["体育"] for _, body in results[:6])
        status, body = results[6]
        assert status == 422 and "texts[0] is not valid Unicode" in body["error"], results[6]
        assert sum(recorder.calls) == 6  # the bad text never reached the model
        # a surrogate PAIR written as two escapes is one valid character (U+1F600)
        assert client.request("POST", "/predict", '{"texts": ["\\ud83d\\ude00 球赛"]}')[0] == 200
        assert client.request("POST", "/predict", b'{"\\udc00": 1}')[0] == 422  # in a key: still a clean 422
        metrics = client.metrics()
        assert 'paddle_tag_requests_total{status="500"}' not in metrics
    with pytest.raises(HTTPError) as err:
        parse_recommend(b'{"history": ["m1", "\\udfffm2"]}', ServeSettings(), 40)
    assert err.value.status == 422 and "history[1] is not valid Unicode" in err.value.message
    with pytest.raises(HTTPError, match="texts\\[1\\] is not valid Unicode"):
        parse_texts(b'{"texts": ["ok", "x\\udbff"]}', ServeSettings())


# ---- a model call that raises fails only the request that caused it ----

def test_a_failing_batch_fails_only_the_request_that_caused_it(mc_predictor, serve_live):
    recorder = Recorder(mc_predictor, poison="坏")
    with serve_live(recorder, max_batch_size=16, max_wait_ms=400, max_queue=64, max_texts=8) as (_srv, client):
        good = [json.dumps({"texts": [f"股市{i}", "芯片"]}).encode() for i in range(6)]
        bad = json.dumps({"texts": ["坏球"]}).encode()
        results = post_at_once(client.port, good[:3] + [bad] + good[3:])
        assert recorder.calls[0] == 13, recorder.calls  # all seven requests were in one batch
        statuses = [status for status, _ in results]
        assert statuses == [200, 200, 200, 500, 200, 200, 200], results
        assert "model exploded" in results[3][1]["error"]
        assert all([r["tags"] for r in body["results"]] == [["财经"], ["科技"]]
                   for status, body in results if status == 200)
        metrics = client.metrics()
        assert metrics['paddle_tag_requests_total{status="500"}'] == 1
        assert metrics['paddle_tag_requests_total{status="200"}'] == 6


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


CHUNKED = (b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"tex\r\n")


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
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# ---- 5. a client that hangs up mid-body ----

def test_a_client_disconnect_mid_body_is_counted_not_a_500(mc_predictor, serve_live, poll, caplog):
    """Hanging up in the middle of a small body (held by the server until complete) and in the middle of a
    chunked body (streamed to the app): two client disconnects, each one INFO line, no 500, no traceback."""
    caplog.set_level(logging.INFO, logger="deploy")
    with serve_live(mc_predictor) as (_srv, client):
        garbage = socket.create_connection(("127.0.0.1", client.port), timeout=10)
        garbage.sendall(b"NOT HTTP\r\n\r\n")  # refused by h11 (400): the server closes it, not a disconnect
        assert garbage.recv(65536).startswith(b"HTTP/1.1 400 ")
        garbage.close()
        for i, request in enumerate([b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 1000\r\n\r\n{\"texts\": [\"ok", CHUNKED], start=1):
            sock = socket.create_connection(("127.0.0.1", client.port), timeout=10)
            sock.sendall(request)
            time.sleep(0.2)  # the body is being read
            sock.close()
            assert poll(lambda i=i: client.metrics().get("paddle_tag_client_disconnects_total") == i, 5)
        metrics = client.metrics()
        assert not any(k.startswith("paddle_tag_requests_total") for k in metrics), metrics
        assert client.json("POST", "/predict", {"texts": ["球赛"]})[0] == 200
    records = [r for r in caplog.records if r.name.startswith("deploy")]
    assert not any(r.exc_info or r.levelno >= logging.ERROR for r in records), [r.getMessage() for r in records]
    assert [r.levelno for r in records if "disconnected" in r.getMessage()] == [logging.INFO] * 2


# ---- 6. only JSON bodies ----

def test_a_wrong_or_missing_content_type_is_a_415(mc_predictor, serve_live):
    body = json.dumps({"texts": ["球赛"]}).encode()
    with serve_live(mc_predictor) as (_srv, client):
        def post(content_type: str | None) -> tuple[int, dict, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
            try:
                conn.request("POST", "/predict", body, {} if content_type is None else {"Content-Type": content_type})
                resp = conn.getresponse()
                return resp.status, dict(resp.getheaders()), resp.read()
            finally:
                conn.close()

        for content_type in ("text/plain", "application/x-www-form-urlencoded", None, "application/jsonx",
                             "application/json; charset=latin-1", "multipart/form-data; boundary=x"):
            status, headers, data = post(content_type)
            assert status == 415, (content_type, status, data)
            assert headers["content-type"].startswith("application/json")
            assert "application/json" in json.loads(data)["error"]
        for content_type in ("application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8",
                             'application/json; charset="utf-8"'):
            assert post(content_type)[0] == 200, content_type
        assert client.metrics()['paddle_tag_requests_total{status="415"}'] == 6


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
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert not errors, errors[:5]
    assert statuses.get(200, 0) > 0 and set(statuses) <= {200, 503}, statuses
    assert len(health) >= 10 and all(status == 200 and seconds < 1.0 for status, seconds in health), health
    assert "Traceback" not in "".join(lines)
