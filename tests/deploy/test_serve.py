"""The HTTP server against a REAL uvicorn on 127.0.0.1 (ephemeral port), running the real tiny model.

Request loops are bounded; every wait has a timeout. ``Slow`` wraps the real predictor and only adds
sleep, to make queueing and shutdown timing deterministic.
"""
from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
from server_process import start_server

from deploy.serve import ServeSettings, Service, parse_texts

REPO = Path(__file__).resolve().parents[2]


class Slow:
    """The real predictor plus a fixed delay per call (timing double); counts calls and batch sizes."""

    def __init__(self, inner, delay: float = 0.0, warmup_delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.warmup_delay = warmup_delay
        self.calls: list[int] = []
        self.started = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, texts):
        if texts == ["预热 warm-up"]:
            time.sleep(self.warmup_delay)
            return self.inner.predict(texts)
        self.calls.append(len(texts))
        self.started.set()
        time.sleep(self.delay)
        return self.inner.predict(texts)


def in_threads(fn, args_list, timeout=30.0):
    """Run ``fn(*args)`` for each args in parallel threads, started together; return results in order."""
    results = [None] * len(args_list)
    barrier = threading.Barrier(len(args_list))

    def work(i, args):
        barrier.wait(timeout)
        results[i] = fn(*args)

    threads = [threading.Thread(target=work, args=(i, a), daemon=True) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    return threads, results


def join_all(threads, timeout=30.0):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        assert not t.is_alive(), "a client thread hung"


LIMITS = {"max_batch_size": 16, "max_wait_ms": 80, "max_queue": 64, "max_texts": 8, "max_chars": 200,
          "max_body_bytes": 8192}


@pytest.fixture(scope="module")
def server(mc_predictor, serve_live):
    counter = Slow(mc_predictor)
    with serve_live(counter, **LIMITS) as (_srv, client):
        yield counter, client


def test_answers_in_input_order(server, mc_predictor):
    _, client = server
    texts = ["新电影主题歌", "皇马客场赢球", "芯片与网络", "股市大涨", "球" * 30]
    status, body = client.json("POST", "/predict", {"texts": texts})
    assert status == 200
    expected = [mc_predictor.predict([t])[0] for t in texts]
    assert body["results"] == expected
    assert [r["tags"] for r in body["results"]] == [["娱乐"], ["体育"], ["科技"], ["财经"], ["体育"]]
    assert [r["truncated"] for r in body["results"]] == [False] * 4 + [True]


def test_concurrent_requests_are_batched(server, mc_predictor):
    counter, client = server
    before = client.metrics()
    calls_before = len(counter.calls)
    payloads = [["股市大涨", f"第{i}场球赛"] if i % 2 else [f"芯片{i}"] for i in range(12)]
    threads, results = in_threads(lambda texts: client.json("POST", "/predict", {"texts": texts}),
                                  [(p,) for p in payloads])
    join_all(threads)
    for texts, (status, body) in zip(payloads, results):
        assert status == 200
        assert body["results"] == [mc_predictor.predict([t])[0] for t in texts]
    after = client.metrics()
    batches = after["paddle_tag_batch_size_count"] - before["paddle_tag_batch_size_count"]
    texts_run = after["paddle_tag_batch_size_sum"] - before["paddle_tag_batch_size_sum"]
    model_calls = len(counter.calls) - calls_before
    assert texts_run == sum(map(len, payloads)) == 18
    assert model_calls == batches < len(payloads), counter.calls
    assert texts_run / batches > 1  # the mean batch holds more than one text
    assert after['paddle_tag_requests_total{status="200"}'] - before['paddle_tag_requests_total{status="200"}'] == 12


BAD_REQUESTS = [
    (b"{not json", 400, "invalid JSON"),
    (b"\xff\xfe\x00garbage", 400, "invalid JSON"),
    (json.dumps(["a", "b"]), 422, "body must be a JSON object"),
    (json.dumps({"text": ["a"]}), 422, "unknown field(s) ['text']"),
    (json.dumps({}), 422, "missing field 'texts'"),
    (json.dumps({"texts": "球赛"}), 422, "'texts' must be a list of strings, got str"),
    (json.dumps({"texts": []}), 422, "'texts' is empty"),
    (json.dumps({"texts": ["ok", 3]}), 422, "texts[1] must be a string, got int"),
    (json.dumps({"texts": ["ok", None]}), 422, "texts[1] must be a string, got NoneType"),
    (json.dumps({"texts": ["ok", "ok", " \n\t"]}), 422, "texts[2] is empty or whitespace only"),
    (json.dumps({"texts": ["ok"] * 9}), 413, "too many texts: 9 > --max-texts 8"),
    (json.dumps({"texts": ["ok", "球" * 201]}), 413, "texts[1] has 201 characters, more than --max-chars 200"),
    (json.dumps({"texts": ["长" * 190] * 8}, ensure_ascii=True), 413, "exceeds --max-body-bytes 8192"),
]


@pytest.mark.parametrize("body, status, message", BAD_REQUESTS, ids=[m for _, _, m in BAD_REQUESTS])
def test_bad_input_gets_a_clear_4xx(server, body, status, message):
    _, client = server
    got, headers, data = client.request("POST", "/predict", body)
    assert got == status, data
    assert headers["content-type"].startswith("application/json")
    assert message in json.loads(data)["error"]


def test_body_limit_holds_without_content_length(server):
    """A chunked body (no Content-Length) is cut off at the limit too."""
    import http.client

    _, client = server
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
    big = iter([b'{"texts": ["'] + [b"y" * 1000] * 20 + [b'"]}'])
    try:
        conn.request("POST", "/predict", body=big, encode_chunked=True,
                     headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        assert resp.status == 413 and "max-body-bytes" in json.loads(resp.read())["error"]
    finally:
        conn.close()


def test_health_ready_metrics_and_unknown_routes(server):
    _, client = server
    assert client.json("GET", "/health") == (200, {"status": "ok"})
    status, ready = client.json("GET", "/ready")
    assert status == 200 and ready["status"] == "ready"
    assert ready["device"] == "cpu" and ready["precision"] == "fp32" and ready["task"] == "multi_class"
    assert ready["labels"] == ["体育", "财经", "科技", "娱乐"]
    assert client.request("POST", "/predict", {"texts": [""]})[0] == 422
    status, headers, data = client.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = data.decode()
    for needle in ("# TYPE paddle_tag_requests_total counter", 'paddle_tag_requests_total{status="422"}',
                   "# TYPE paddle_tag_batch_size histogram", 'paddle_tag_batch_size_bucket{le="+Inf"}',
                   "# TYPE paddle_tag_request_latency_seconds histogram", "paddle_tag_texts_total",
                   "paddle_tag_queue_depth 0", "paddle_tag_ready 1", "paddle_tag_truncated_texts_total"):
        assert needle in text, needle
    assert client.request("GET", "/nope")[0] == 404
    assert client.request("GET", "/predict")[0] == 405


def test_queue_full_gets_503_at_once(mc_predictor, serve_live, poll):
    slow = Slow(mc_predictor, delay=0.4)
    with serve_live(slow, max_batch_size=1, max_wait_ms=0, max_queue=2, max_texts=2) as (srv, client):
        service: Service = srv.service
        threads, results = in_threads(lambda texts: client.json("POST", "/predict", {"texts": texts}),
                                      [(["球赛"],)])
        assert slow.started.wait(10)  # "球赛" is in the model; the queue is empty again
        more, more_results = in_threads(lambda texts: client.json("POST", "/predict", {"texts": texts}),
                                        [(["股市", "芯片"],)])
        assert poll(lambda: service.batcher.depth == 2, 10)
        t0 = time.monotonic()
        status, headers, data = client.request("POST", "/predict", {"texts": ["歌影"]})
        assert status == 503 and time.monotonic() - t0 < 0.3
        assert "queue full" in json.loads(data)["error"] and headers.get("retry-after") == "1"
        join_all(threads + more)
        assert results[0][0] == 200 and results[0][1]["results"][0]["tags"] == ["体育"]
        assert more_results[0][0] == 200
        assert [r["tags"] for r in more_results[0][1]["results"]] == [["财经"], ["科技"]]
        metrics = client.metrics()
        assert metrics['paddle_tag_requests_total{status="503"}'] == 1
        assert metrics["paddle_tag_queue_full_total"] == 1


def test_not_ready_until_warmed_up(mc_predictor, serve_live, poll):
    slow = Slow(mc_predictor, warmup_delay=1.0)
    with serve_live(slow, wait_ready=False) as (_srv, client):
        assert client.json("GET", "/health") == (200, {"status": "ok"})
        assert client.json("GET", "/ready") == (503, {"status": "loading"})
        status, body = client.json("POST", "/predict", {"texts": ["球赛"]})
        assert status == 503 and "not ready" in body["error"]
        assert poll(lambda: client.request("GET", "/ready")[0] == 200, 10)
        assert client.json("POST", "/predict", {"texts": ["球赛"]})[0] == 200


def test_graceful_shutdown_finishes_in_flight_requests(mc_predictor, serve_live, poll):
    slow = Slow(mc_predictor, delay=0.3)
    texts = [["球赛"], ["股市"], ["芯片"], ["电影"]]
    with serve_live(slow, max_batch_size=2, max_wait_ms=0, max_queue=8, max_texts=4) as (srv, client):
        service: Service = srv.service
        threads, results = in_threads(lambda t: client.json("POST", "/predict", {"texts": t}),
                                      [(t,) for t in texts])
        assert slow.started.wait(10)
        # every request is inside the server: some texts in the model, the rest still queued
        assert poll(lambda: sum(slow.calls) + service.batcher.depth == 4 and service.batcher.depth > 0, 10)
        srv.handle_exit(signal.SIGTERM, None)  # what uvicorn's SIGTERM handler calls
        assert not service.ready
        join_all(threads)
    assert [status for status, _ in results] == [200] * 4
    assert [body["results"][0]["tags"] for _, body in results] == [["体育"], ["财经"], ["科技"], ["娱乐"]]
    assert not srv.service.batcher.running


class Failing(Slow):
    def predict(self, texts):
        if "坏" in texts:
            raise RuntimeError("model exploded")
        return super().predict(texts)


def test_a_model_error_is_a_500_and_the_server_keeps_serving(mc_predictor, serve_live):
    with serve_live(Failing(mc_predictor)) as (_srv, client):
        status, body = client.json("POST", "/predict", {"texts": ["坏"]})
        assert status == 500 and "model exploded" in body["error"]
        assert client.json("POST", "/predict", {"texts": ["球赛"]})[0] == 200
        metrics = client.metrics()
        assert metrics["paddle_tag_model_errors_total"] == 1
        assert metrics['paddle_tag_requests_total{status="500"}'] == 1


def test_settings_are_checked():
    with pytest.raises(Exception, match="must not exceed --max-queue"):
        ServeSettings(max_texts=10, max_queue=5).check()
    with pytest.raises(Exception, match="--max-wait-ms must be >= 0"):
        ServeSettings(max_wait_ms=-1).check()
    assert parse_texts(b'{"texts": ["a", "b"]}', ServeSettings()) == ["a", "b"]


def test_serve_cli_sigterm_drains_and_exits_0(mc_export, child_env, client_cls, poll):
    """The real CLI in a subprocess: SIGTERM while requests wait for their batch → all 200, exit 0."""
    proc, lines, port = start_server(["--model-dir", mc_export, "--max-wait-ms", 2000, "--max-batch-size", 64],
                                     child_env)
    try:
        assert port, "".join(lines)
        client = client_cls(port)
        assert poll(lambda: client.request("GET", "/ready")[0] == 200, 20)
        threads, results = in_threads(lambda t: client.json("POST", "/predict", {"texts": t}),
                                      [(["球赛"],), (["股市", "芯片"],), (["电影"],)])
        # all four texts wait for a batch that would fill only after 2 s
        assert poll(lambda: client.metrics()["paddle_tag_queue_depth"] == 4, 10)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        join_all(threads)
        assert proc.wait(20) == 0, "".join(lines)
        assert time.monotonic() - t0 < 2.0  # drained at once, not after --max-wait-ms
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert [s for s, _ in results] == [200] * 3
    assert [[r["tags"][0] for r in body["results"]] for _, body in results] == [["体育"], ["财经", "科技"], ["娱乐"]]
    assert "Traceback" not in "".join(lines)


@pytest.mark.parametrize("args, message", [
    (["--device", "gpu"], "CUDAExecutionProvider"),
    (["--max-texts", 300], "must not exceed --max-queue"),
    (["--read-timeout", 0], "--read-timeout must be > 0"),
    (["--keep-alive-timeout", -1], "--keep-alive-timeout must be > 0"),
    (["--max-connections", 10 ** 9], "file descriptors, the limit (RLIMIT_NOFILE) is"),
])
def test_serve_cli_user_errors_exit_2(mc_export, run_module, args, message):
    result = run_module("deploy.serve", "--model-dir", mc_export, "--port", 0, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
