"""Recommender exports in deploy/: the real ONNX user encoder + item search against numpy brute force, every check of
the export directory, ``POST /recommend`` on a REAL uvicorn on 127.0.0.1 (every bad-input rule, batching, /ready,
/metrics), and the CLIs in subprocesses. numpy, onnx and the deploy package only (runs in the deploy-only venv)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from onnx_recommenders import GENRES, MAX_LEN, NUM_ITEMS, RecommenderKit, expected_top_k

from deploy.export_dir import ManifestError
from deploy.http_inputs import ServeSettings, parse_recommend
from deploy.predictor import Predictor
from deploy.recommender import FALLBACK, Recommender

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rkit(tmp_path_factory) -> RecommenderKit:
    return RecommenderKit(tmp_path_factory.mktemp("recommenders"))


@pytest.fixture(scope="module")
def rec_export(rkit) -> Path:
    return rkit.make()


@pytest.fixture(scope="module")
def recommender(rec_export) -> Recommender:
    return Recommender(rec_export, threads=1)


def ids_of(rows: list[int]) -> list[str]:
    return [f"m{row}" for row in rows]


def test_recommendations_are_the_brute_force_top_k_without_seen_items(recommender, rkit, rec_export):
    table, weight = rkit.arrays(rec_export)
    for history in ([3], [5, 9, 12], [1, 2, 3, 4, 5, 6, 7, 8], [7, 7, 30]):
        answer = recommender.recommend(ids_of(history), k=5)
        rows, scores = expected_top_k(table, weight, history, 5)
        assert [item["id"] for item in answer["items"]] == ids_of(rows)
        assert [item["score"] for item in answer["items"]] == pytest.approx(scores, abs=1e-3)
        assert answer["fallback"] is None and answer["unknown"] == []
        assert answer["truncated"] is (len(history) > MAX_LEN)
        assert not set(ids_of(history)) & {item["id"] for item in answer["items"]}


def test_a_batch_answers_each_request_with_its_own_k(recommender, rkit, rec_export):
    table, weight = rkit.arrays(rec_export)
    requests = [{"history": ["m4"], "k": 1}, {"history": [], "k": 3}, {"history": ["m2", "m8"], "k": 7}]
    answers = recommender.predict(requests)
    assert [len(a["items"]) for a in answers] == [1, 3, 7]
    assert [i["id"] for i in answers[0]["items"]] == ids_of(expected_top_k(table, weight, [4], 1)[0])
    assert [i["id"] for i in answers[2]["items"]] == ids_of(expected_top_k(table, weight, [2, 8], 7)[0])
    assert answers[1]["fallback"] == FALLBACK


def test_items_carry_titles_and_tags_when_they_have_them(recommender):
    items = recommender.recommend([], k=NUM_ITEMS)["items"]
    by_id = {item["id"]: item for item in items}
    assert len(by_id) == NUM_ITEMS and "<pad>" not in by_id
    assert by_id["m5"].get("title") is None and by_id["m6"]["title"] == "电影 6"  # m5 has no title
    assert by_id["m6"]["tags"] == [GENRES[6 % len(GENRES)]]


def test_unknown_ids_are_skipped_and_listed(recommender, rkit, rec_export):
    table, weight = rkit.arrays(rec_export)
    answer = recommender.recommend(["m3", "nope", "m10", "nope", ""], k=4)
    assert answer["unknown"] == ["nope", ""] and answer["fallback"] is None
    assert [i["id"] for i in answer["items"]] == ids_of(expected_top_k(table, weight, [3, 10], 4)[0])


def test_empty_or_all_unknown_history_gets_the_most_popular_items(recommender, rec_export):
    popular = json.loads((rec_export / "popular.json").read_text())
    for history, unknown in (([], []), (["x", "y", "x"], ["x", "y"])):
        answer = recommender.recommend(history, k=6)
        assert answer["fallback"] == FALLBACK and answer["unknown"] == unknown
        assert [i["id"] for i in answer["items"]] == ids_of(popular["order"][:6])
        assert [i["score"] for i in answer["items"]] == popular["counts"][:6]  # interaction counts


def test_a_long_history_reads_its_last_max_len_items_and_excludes_all(recommender, rkit, rec_export):
    table, weight = rkit.arrays(rec_export)
    history = list(range(1, 21))
    answer = recommender.recommend(ids_of(history), k=10)
    assert answer["truncated"] is True
    assert [i["id"] for i in answer["items"]] == ids_of(expected_top_k(table, weight, history, 10)[0])


def test_fewer_items_when_the_history_holds_nearly_the_whole_catalogue(recommender):
    seen = ids_of(range(1, NUM_ITEMS - 2))  # 3 items left
    answer = recommender.recommend(seen, k=10)
    assert sorted(i["id"] for i in answer["items"]) == sorted(ids_of(range(NUM_ITEMS - 2, NUM_ITEMS + 1)))
    with pytest.raises(Exception, match="between 1 and the catalogue size 40"):
        recommender.recommend(["m1"], k=41)


# ---- the export directory is checked at start-up ----

def _rewrite(path: Path, edit) -> None:
    path.write_bytes(edit(path.read_bytes()))


@pytest.mark.parametrize("name", ["item_table.npy", "items.json", "popular.json", "user_encoder.onnx"])
def test_a_tampered_file_is_refused(rkit, rec_export, name):
    copy = rkit.copy(rec_export)
    _rewrite(copy / name, lambda data: data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
    with pytest.raises(ManifestError, match=f"{name}: sha256 mismatch"):
        Recommender(copy)


def test_items_of_another_item_set_are_refused_even_when_rehashed(rkit, rec_export):
    copy = rkit.copy(rec_export)
    items = json.loads((copy / "items.json").read_text(encoding="utf-8"))
    items["ids"] = items["ids"][:1] + list(reversed(items["ids"][1:]))  # same ids, another order
    (copy / "items.json").write_text(json.dumps(items), encoding="utf-8")
    rkit.write_manifest(copy, rkit.read_manifest(copy))
    with pytest.raises(ManifestError, match="not the 40 items the model was exported with"):
        Recommender(copy)


def test_a_table_of_another_export_is_refused(rkit, rec_export, tmp_path):
    copy = rkit.copy(rec_export)
    other = rkit.make(num_items=30, seed=1)
    (copy / "item_table.npy").write_bytes((other / "item_table.npy").read_bytes())
    rkit.write_manifest(copy, rkit.read_manifest(copy))
    with pytest.raises(ManifestError, match=r"expected finite float32 \[41, 8\], got float32 \[31, 8\]"):
        Recommender(copy)


def test_a_pickled_table_is_never_loaded(rkit, rec_export):
    copy = rkit.copy(rec_export)
    np.save(copy / "item_table.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    rkit.write_manifest(copy, rkit.read_manifest(copy))
    with pytest.raises(ManifestError, match="not a plain .npy array"):
        Recommender(copy)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format_version=2), "recommender format_version 2 is not supported"),
    (lambda d: d["model"].update(max_len=0), "max_len must be >= 1"),
    (lambda d: d["inputs"][0].update(name="input_ids"), "inputs"),
    (lambda d: d["item_table"].update(padding_row=1), "padding_row 0"),
    (lambda d: d["items"].update(count=39), "items must say count 40"),
    (lambda d: d["models"].update(int8={"file": "user_encoder.onnx"}), "models must be exactly"),
    (lambda d: d["files"].pop("popular.json"), "popular.json is not listed in 'files'"),
])
def test_manifest_problems_are_named(rkit, rec_export, edit, message):
    copy = rkit.copy(rec_export)
    doc = rkit.read_manifest(copy)
    edit(doc)
    rkit.write_manifest(copy, doc, rehash=False)
    with pytest.raises(ManifestError, match=message):
        Recommender(copy)


def test_taggers_and_recommenders_refuse_each_others_exports(rec_export, mc_export):
    with pytest.raises(ManifestError, match="recommender export, not a tagger"):
        Predictor(rec_export)
    with pytest.raises(ManifestError, match="kind 'tagger' is not a recommender export"):
        Recommender(mc_export)
    with pytest.raises(Exception, match="fp32 user encoder only"):
        Recommender(rec_export, precision="int8")


# ---- POST /recommend on a live server ----

LIMITS = {"max_batch_size": 8, "max_wait_ms": 80, "max_queue": 32, "max_texts": 8, "max_body_bytes": 4096,
          "max_history": 50}


@pytest.fixture(scope="module")
def rec_server(recommender, serve_live):
    with serve_live(recommender, **LIMITS) as (_srv, client):
        yield client


def test_recommend_answers_like_the_recommender(rec_server, recommender):
    status, body = rec_server.json("POST", "/recommend", {"history": ["m3", "zz", "m9"], "k": 5})
    assert status == 200
    assert body == recommender.recommend(["m3", "zz", "m9"], k=5)
    assert body["unknown"] == ["zz"] and len(body["items"]) == 5
    status, body = rec_server.json("POST", "/recommend", {"history": ["m3"]})  # k defaults to 10
    assert status == 200 and len(body["items"]) == 10
    status, body = rec_server.json("POST", "/recommend", {"history": []})
    assert status == 200 and body["fallback"] == FALLBACK


BAD_REQUESTS = [
    (b"{not json", 400, "invalid JSON"),
    (b"\xff\xfe\x00garbage", 400, "invalid JSON"),
    (json.dumps(["m1"]), 422, "body must be a JSON object"),
    (json.dumps({"history": [], "texts": []}), 422, "unknown field(s) ['texts']"),
    (json.dumps({"k": 3}), 422, "missing field 'history'"),
    (json.dumps({"history": "m1"}), 422, "'history' must be a list of item id strings, got str"),
    (json.dumps({"history": ["m1", 7]}), 422, "history[1] must be an item id string, got int 7"),
    (json.dumps({"history": ["m1"], "k": 0}), 422, "'k' must be between 1 and the catalogue size 40, got 0"),
    (json.dumps({"history": ["m1"], "k": -3}), 422, "'k' must be between 1 and the catalogue size 40, got -3"),
    (json.dumps({"history": ["m1"], "k": 41}), 422, "'k' must be between 1 and the catalogue size 40, got 41"),
    (json.dumps({"history": ["m1"], "k": 2.5}), 422, "'k' must be an integer, got float 2.5"),
    (json.dumps({"history": ["m1"], "k": "3"}), 422, "'k' must be an integer, got str '3'"),
    (json.dumps({"history": ["m1"], "k": True}), 422, "'k' must be an integer, got bool True"),
    (json.dumps({"history": ["m1"] * 51}), 413, "history of 51 items exceeds --max-history 50"),
    (json.dumps({"history": ["m1" * 600] * 4}), 413, "exceeds --max-body-bytes 4096"),
]


@pytest.mark.parametrize("body, status, message", BAD_REQUESTS, ids=[m for _, _, m in BAD_REQUESTS])
def test_bad_input_gets_a_clear_4xx(rec_server, body, status, message):
    got, headers, data = rec_server.request("POST", "/recommend", body)
    assert got == status, data
    assert headers["content-type"].startswith("application/json")
    assert message in json.loads(data)["error"]


def test_one_bad_request_never_harms_the_others_in_its_batch(rec_server, recommender):
    """Good and bad requests at once: the bad get their 4xx, the good are batched together and answered right."""
    before = rec_server.metrics()
    bodies = [{"history": [f"m{i}", f"m{i + 1}"], "k": 3} if i % 3 else {"history": [f"m{i}"], "k": 0}
              for i in range(1, 13)]
    results: list = [None] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        barrier.wait(10)
        results[i] = rec_server.json("POST", "/recommend", bodies[i])

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    for body, (status, answer) in zip(bodies, results):
        if body["k"] == 0:
            assert status == 422
        else:
            assert status == 200 and answer == recommender.recommend(body["history"], k=3)
    after = rec_server.metrics()
    batches = after["paddle_tag_batch_size_count"] - before["paddle_tag_batch_size_count"]
    histories = after["paddle_tag_batch_size_sum"] - before["paddle_tag_batch_size_sum"]
    assert histories == 8 and batches < 8  # batched, and only the good ones reached the model
    assert after['paddle_tag_requests_total{status="422"}'] - before.get('paddle_tag_requests_total{status="422"}',
                                                                         0) == 4


def test_ready_metrics_and_the_other_route(rec_server):
    status, ready = rec_server.json("GET", "/ready")
    assert status == 200 and ready["kind"] == "recommender" and ready["num_items"] == NUM_ITEMS
    assert ready["max_len"] == MAX_LEN and ready["model"] == "tiny_mean" and ready["device"] == "cpu"
    status, body = rec_server.json("POST", "/predict", {"texts": ["球赛"]})
    assert status == 404 and "serves a recommender export: use POST /recommend" in body["error"]
    assert rec_server.request("GET", "/recommend")[0] == 405
    assert "paddle_tag_ready 1" in rec_server.request("GET", "/metrics")[2].decode()


def test_a_tagger_server_answers_recommend_with_404(mc_predictor, serve_live):
    with serve_live(mc_predictor) as (_srv, client):
        status, body = client.json("POST", "/recommend", {"history": ["m1"]})
        assert status == 404 and "use POST /predict" in body["error"]


def test_parse_recommend_defaults_k_to_the_smaller_of_10_and_the_catalogue():
    assert parse_recommend(b'{"history": ["a"]}', ServeSettings(), 40) == {"history": ["a"], "k": 10}
    assert parse_recommend(b'{"history": []}', ServeSettings(), 4) == {"history": [], "k": 4}


# ---- the CLIs ----

def test_serve_cli_serves_a_recommender_and_exits_0_on_sigterm(rec_export, child_env, client_cls, poll):
    proc = subprocess.Popen([sys.executable, "-m", "deploy.serve", "--model-dir", str(rec_export), "--port", "0",
                             "--threads", "1"], cwd=REPO, env=child_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    listening = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "listening on http://" in line:
                listening.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert listening.wait(60), "".join(lines)
        line = next(line for line in lines if "listening on http://" in line)
        assert "(recommender, 40 items, cpu fp32" in line
        client = client_cls(int(line.split("listening on http://", 1)[1].split()[0].rsplit(":", 1)[1]))
        assert poll(lambda: client.request("GET", "/ready")[0] == 200, 20)
        status, body = client.json("POST", "/recommend", {"history": ["m1", "m2"], "k": 3})
        assert status == 200 and len(body["items"]) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "Traceback" not in "".join(lines)


def test_predict_cli_recommends_for_histories(rec_export, recommender, run_module, tmp_path):
    result = run_module("deploy.predict", "--model-dir", rec_export, "--threads", 1, "--top-k", 3,
                        "--history", '["m1", "m2"]', "--history", "[]")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0] == {"history": ["m1", "m2"], **recommender.recommend(["m1", "m2"], k=3)}
    assert rows[1]["history"] == [] and rows[1]["fallback"] == FALLBACK
    src = tmp_path / "histories.jsonl"
    src.write_text('{"history": ["m4", "zz"]}\n\n{"history": []}\n', encoding="utf-8")
    result = run_module("deploy.predict", "--model-dir", rec_export, "--input", src)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [len(r["items"]) for r in rows] == [10, 10] and rows[0]["unknown"] == ["zz"]


@pytest.mark.parametrize("args, message", [
    (["--text", "球赛"], "takes either --history (one or more) or --input"),
    (["--history", '["m1"]', "--top-k", 41], "--top-k 41 exceeds the catalogue size 40"),
    (["--history", '["m1"]', "--precision", "fp16"], "fp32 user encoder only"),
    (["--history", "m1,m2"], "--history 1 is not JSON"),
    (["--history", '{"m1": 1}'], "--history 1 must be a JSON list of item ids, got dict"),
    (["--history", '["m1", 2]'], "history 1: item ids must be strings"),
])
def test_predict_cli_user_errors_exit_2(rec_export, run_module, args, message):
    result = run_module("deploy.predict", "--model-dir", rec_export, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_predict_cli_refuses_histories_for_a_tagger(mc_export, run_module):
    result = run_module("deploy.predict", "--model-dir", mc_export, "--history", '["m1"]')
    assert result.returncode == 2 and "--history is for a recommender export" in result.stderr
