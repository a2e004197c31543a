"""Read tagging examples from JSON Lines or TSV, with errors that name the file and line.

JSON Lines: ``{"text": "...", "labels": ["体育", "财经"]}`` one object a line (``labels`` always a list).
TSV: ``label<TAB>text`` one example a line, for single-label data (exactly two columns).

Files are UTF-8 (a BOM is allowed). Every bad line of a file (invalid UTF-8 or JSON, a missing field, a lone
surrogate, a wrong column count) is reported by ``file:line`` in one :class:`DataError`.
"""
from __future__ import annotations

import codecs
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional, TypeVar

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


MAX_REPORTED = 20  # bad lines listed in one error; the rest are counted
T = TypeVar("T")


def read_lines(path: str | os.PathLike, parse: Callable[[str, str, int], Optional[T]],
               what: Optional[str] = "examples") -> list[T]:
    """``parse(line, "file:line", number)`` for each non-blank line of a UTF-8 file, in order (``None`` results
    are dropped). Every bad line is reported in one :class:`DataError` (the first :data:`MAX_REPORTED` by
    ``file:line``, the rest counted), so a file is fixed in one pass; invalid UTF-8 is a bad line too. No rows is
    an error naming ``what`` (``None``: the caller decides)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    rows: list[T] = []
    errors: list[str] = []
    with path.open("rb") as handle:  # bytes, so a bad byte is reported by line instead of ending the read
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                line = _decode(raw[3:] if number == 1 and raw.startswith(codecs.BOM_UTF8) else raw, where)
                if not line.strip():
                    continue
                row = parse(line.rstrip("\r\n"), where, number)
            except DataError as exc:
                errors.append(str(exc))
                continue
            if row is not None:
                rows.append(row)
    if len(errors) == 1:
        raise DataError(errors[0])
    if errors:
        more = f"\n  ... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        raise DataError(f"{path}: {len(errors)} bad lines:\n  " + "\n  ".join(errors[:MAX_REPORTED]) + more)
    if not rows and what is not None:
        raise DataError(f"{path}: no {what} (the file is empty)")
    return rows


def read_examples(path: str | os.PathLike, fmt: Format = "auto", require_labels: bool = True) -> list[Example]:
    """Read every example of a data file; raise :class:`DataError` listing its bad lines."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    parse_line = _parse_jsonl_line if detect_format(path, fmt) == "jsonl" else _parse_tsv_line

    def parse(line: str, where: str, number: int) -> Example:
        text, labels = parse_line(line, where, require_labels)
        return Example(text=text, labels=labels, source=str(path), line=number)

    return read_lines(path, parse)


def read_json_lines(path: str | os.PathLike, parse: Callable[[dict, str, int], Optional[T]],
                    what: Optional[str] = "items") -> list[T]:
    """:func:`read_lines` for JSON Lines whose every line must be a JSON object: ``parse(object, "file:line",
    number)``."""
    return read_lines(path, lambda line, where, number: parse(json_object(line, where, 'a "text"'), where, number),
                      what)


def item_id(value: object, where: str) -> Optional[str]:
    """An item's ``"id"`` as a string: a non-empty string or an integer (``None`` when absent); anything else
    (a float, a bool, an object, a list) is refused rather than stored as its Python repr."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{where}: \"id\" must be a string or an integer, got {type(value).__name__} {value!r}")
    value = check_unicode(str(value).strip(), where, '"id"')
    if not value:
        raise DataError(f"{where}: \"id\" is empty")
    return value


def check_unicode(text: str, where: str, what: str = "text") -> str:
    """``text`` unchanged, or :class:`DataError` if it holds a lone surrogate (JSON ``"\\ud800"``): not valid
    Unicode, so no tokenizer or database can take it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(f"{where}: {what} holds a lone surrogate (U+{ord(text[exc.start]):04X} at character "
                        f"{exc.start + 1}), which is not valid Unicode") from None
    return text


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: invalid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the "
                        f"line); save the file as UTF-8") from None


def json_object(raw: str, where: str, expected: str) -> dict:
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
    return check_unicode(text.strip(), where)


def _parse_jsonl_line(raw: str, where: str, require_labels: bool) -> tuple[str, list[str]]:
    obj = json_object(raw, where, '"text" and "labels"')
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
        check_unicode(label, where, "a label")
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
    columns = raw.split("\t")
    if len(columns) != 2:
        raise DataError(f"{where}: {len(columns)} tab-separated columns, expected 2 (label<TAB>text); a text with "
                        f"tabs goes in a .jsonl file")
    label, text = columns
    if not label.strip():
        raise DataError(f"{where}: empty label")
    return _check_text(text, where), [check_unicode(label.strip(), where, "the label")]
