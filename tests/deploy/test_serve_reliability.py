"""One client's bad request must never break other clients' requests.

Against a REAL uvicorn on 127.0.0.1 running the real tiny model: a lone surrogate in the JSON, a batch whose model
call raises, a client that hangs up mid-body, a wrong Content-Type. Stalled and excess connections:
test_serve_connections.py. SIGTERM with requests in flight: test_serve.py
(test_graceful_shutdown_finishes_in_flight_requests, test_serve_cli_sigterm_drains_and_exits_0).
"""
from __future__ import annotations

import http.client
import json
import logging
import socket
import time

import pytest
from server_process import CHUNKED, Recorder, post_at_once

from deploy.http_inputs import HTTPError, ServeSettings, parse_recommend, parse_texts

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


