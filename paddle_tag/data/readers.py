"""Read tagging examples from JSON Lines or TSV, with errors that name the file and line.

JSON Lines: ``{"text": "...", "labels": ["体育", "财经"]}`` one object a line (``labels`` always a list).
TSV: ``label<TAB>text`` one example a line, for single-label data.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Optional

from paddle_tag.errors import DataError

Format = Literal["auto", "jsonl", "tsv"]


@dataclass
class Example:
    """One piece of content and its tags; ``line`` points back into the source file for error messages."""

    text: str
    labels: list[str] = field(default_factory=list)
    source: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def detect_format(path: Path, fmt: Format = "auto") -> str:
    """``jsonl`` or ``tsv``: as given, or from the extension when ``fmt`` is ``auto``."""
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix in (".tsv", ".txt"):
        return "tsv"
    raise DataError(f"{path}: cannot tell the format from the extension {suffix!r}; "
                    "use .jsonl or .tsv, or set Data.format")


def read_examples(path: str | os.PathLike, fmt: Format = "auto", require_labels: bool = True) -> list[Example]:
    """Read every example of a data file; raise :class:`DataError` at the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    kind = detect_format(path, fmt)
    parse = _parse_jsonl_line if kind == "jsonl" else _parse_tsv_line
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            text, labels = parse(raw.rstrip("\n"), where, require_labels)
            examples.append(Example(text=text, labels=labels, source=str(path), line=number))
    if not examples:
        raise DataError(f"{path}: no examples (the file is empty)")
    return examples


def iter_json_lines(path: str | os.PathLike) -> Iterator[tuple[int, str, dict]]:
    """``(line number, "file:line", object)`` for each non-blank line of a JSON Lines file; :class:`DataError`
    for a missing file, invalid JSON or a line that is not a JSON object."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            yield number, where, _json_object(raw, where, 'a "text"')


def _json_object(raw: str, where: str, expected: str) -> dict:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object with {expected}")
    return obj


def _check_text(text: object, where: str) -> str:
    if not isinstance(text, str):
        raise DataError(f"{where}: \"text\" must be a string, got {type(text).__name__}")
    if not text.strip():
        raise DataError(f"{where}: empty text")
    return text.strip()


def _parse_jsonl_line(raw: str, where: str, require_labels: bool) -> tuple[str, list[str]]:
    obj = _json_object(raw, where, '"text" and "labels"')
    if "text" not in obj:
        raise DataError(f"{where}: missing \"text\"")
    text = _check_text(obj["text"], where)
    labels: Optional[object] = obj.get("labels")
    if labels is None:
        if require_labels:
            raise DataError(f"{where}: missing \"labels\" (a list of tag names)")
        return text, []
    if isinstance(labels, str) or not isinstance(labels, list):
        raise DataError(f"{where}: \"labels\" must be a list of strings, got {labels!r}")
    clean = []
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise DataError(f"{where}: every label must be a non-empty string, got {label!r}")
        if label.strip() not in clean:
            clean.append(label.strip())
    if require_labels and not clean:
        raise DataError(f"{where}: \"labels\" is empty")
    return text, clean


def _parse_tsv_line(raw: str, where: str, require_labels: bool) -> tuple[str, list[str]]:
    if "\t" not in raw:
        if require_labels:
            raise DataError(f"{where}: expected label<TAB>text")
        return _check_text(raw, where), []
    label, text = raw.split("\t", 1)
    if not label.strip():
        raise DataError(f"{where}: empty label")
    return _check_text(text, where), [label.strip()]
