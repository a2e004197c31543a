"""What the server accepts: its limits (:class:`ServeSettings`) and the checked bodies of ``POST /predict`` and
``POST /recommend``. Every refusal is an :class:`HTTPError` whose status says who must act: 400 a body that is not
JSON, 415 a body that is not declared ``application/json``, 422 JSON that is not a valid request (wrong types, or
text that is not valid Unicode: a lone surrogate escape such as ``"\\ud800"``), 413 a request over a limit. Every
text is checked here, before it can join a batch with other clients' texts."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from deploy import DeployError

DEFAULT_K = 10  # items recommended when a request gives no "k"


@dataclass(frozen=True)
class ServeSettings:
    """Batching and request limits of one server."""

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    max_texts: int = 64
    max_chars: int = 10_000
    max_body_bytes: int = 4 << 20
    max_history: int = 10_000
    read_timeout: float = 10.0  # seconds for a request (deploy.connections), again for a streamed body (else 408)
    warmup: bool = True

    def check(self) -> None:
        """Raise :class:`DeployError` on settings that cannot work together."""
        for name in ("max_batch_size", "max_queue", "max_texts", "max_chars", "max_body_bytes", "max_history"):
            if getattr(self, name) < 1:
                raise DeployError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise DeployError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms}")
        if not self.read_timeout > 0:
            raise DeployError(f"--read-timeout must be > 0 seconds, got {self.read_timeout}")
        if self.max_texts > self.max_queue:
            raise DeployError(f"--max-texts ({self.max_texts}) must not exceed --max-queue "
                              f"({self.max_queue}): such a request could never be queued")


class HTTPError(Exception):
    """A request error answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def check_content_type(value: str | None) -> None:
    """415 unless ``value`` is ``application/json``, optionally with ``; charset=utf-8`` (any case)."""
    media, _, params = (value or "").partition(";")
    ok = media.strip().lower() == "application/json"
    for param in filter(None, (p.strip() for p in params.split(";"))):
        name, _, arg = param.partition("=")
        ok = ok and name.strip().lower() == "charset" and arg.strip().strip('"').lower() in ("utf-8", "utf8")
    if not ok:
        got = f"Content-Type {value!r}" if value else "no Content-Type"
        raise HTTPError(415, f"send the body as JSON with Content-Type: application/json (got {got})")


def _check_unicode(text: str, where: str) -> None:
    """422 for a string that cannot be UTF-8 (JSON lets a lone surrogate escape through; tokenizers and the
    response encoder cannot take it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise HTTPError(422, f"{where} is not valid Unicode: a lone surrogate {text[exc.start]!r} at character "
                             f"{exc.start} (\\ud800-\\udfff escapes must come in pairs)") from None


def _json_object(body: bytes, shape: str, fields: set[str]) -> dict[str, Any]:
    """The body as a JSON object holding only ``fields`` (400 not JSON, 422 another shape)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise HTTPError(400, f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise HTTPError(422, f"body must be a JSON object {shape}, got {type(doc).__name__}")
    unknown = sorted(set(doc) - fields)
    if unknown:
        raise HTTPError(422, f"unknown field(s) {unknown}; the body takes only {', '.join(map(repr, sorted(fields)))}")
    return doc


def parse_texts(body: bytes, settings: ServeSettings) -> list[str]:
    """Validate a ``POST /predict`` body; return its texts or raise :class:`HTTPError` (400/413/422)."""
    doc = _json_object(body, '{"texts": [...]}', {"texts"})
    if "texts" not in doc:
        raise HTTPError(422, "missing field 'texts' (a list of strings)")
    texts = doc["texts"]
    if not isinstance(texts, list):
        raise HTTPError(422, f"'texts' must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise HTTPError(422, "'texts' is empty; send at least one text")
    if len(texts) > settings.max_texts:
        raise HTTPError(413, f"too many texts: {len(texts)} > --max-texts {settings.max_texts}; "
                             "split the request")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise HTTPError(422, f"texts[{i}] must be a string, got {type(text).__name__}")
        if not text.strip():
            raise HTTPError(422, f"texts[{i}] is empty or whitespace only")
        if len(text) > settings.max_chars:
            raise HTTPError(413, f"texts[{i}] has {len(text)} characters, more than --max-chars "
                                 f"{settings.max_chars}")
        _check_unicode(text, f"texts[{i}]")
    return texts


def parse_recommend(body: bytes, settings: ServeSettings, num_items: int) -> dict[str, Any]:
    """Validate a ``POST /recommend`` body ``{"history": [item id, ...], "k": 10}``; return
    ``{"history": [...], "k": int}`` or raise :class:`HTTPError` (400/413/422).

    Item ids are strings (unknown ones are the model's business, not an error here); ``k`` defaults to
    ``min(10, num_items)`` and must be an integer in ``[1, num_items]``.
    """
    doc = _json_object(body, '{"history": [...], "k": 10}', {"history", "k"})
    if "history" not in doc:
        raise HTTPError(422, "missing field 'history' (a list of item ids, oldest first; [] for the most popular "
                             "items)")
    history = doc["history"]
    if not isinstance(history, list):
        raise HTTPError(422, f"'history' must be a list of item id strings, got {type(history).__name__}")
    if len(history) > settings.max_history:
        raise HTTPError(413, f"history of {len(history)} items exceeds --max-history {settings.max_history}")
    for i, item in enumerate(history):
        if not isinstance(item, str):
            raise HTTPError(422, f"history[{i}] must be an item id string, got {type(item).__name__} {item!r}")
        _check_unicode(item, f"history[{i}]")
    k = doc.get("k", min(DEFAULT_K, num_items))
    if not isinstance(k, int) or isinstance(k, bool):
        raise HTTPError(422, f"'k' must be an integer, got {type(k).__name__} {k!r}")
    if not 1 <= k <= num_items:
        raise HTTPError(422, f"'k' must be between 1 and the catalogue size {num_items}, got {k}")
    return {"history": history, "k": k}
