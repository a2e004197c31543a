"""Atomic writes: a reader sees the old file (or directory) or the new one, never half of one."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from paddle_tag.errors import DamagedFileError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temp file in the same folder, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # unlike mkstemp, honours the umask
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty UTF-8 JSON (Chinese kept readable), atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Write one JSON object per line (Chinese kept readable), atomically."""
    atomic_write_text(path, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records))


def read_json(path: str | os.PathLike) -> Any:
    """Read a UTF-8 JSON file; :class:`DamagedFileError` (naming it) if it is not valid UTF-8 JSON. A missing
    file raises ``FileNotFoundError`` as before, for callers that check for it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = f"{exc.msg} at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) \
            else "not UTF-8"
        raise DamagedFileError(f"{path} is damaged ({reason})") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def previous_copy(directory: str | os.PathLike) -> Path:
    """Where :func:`replace_directory` parks the previous ``directory`` between its two renames."""
    directory = Path(directory)
    return directory.with_name(f".{directory.name}.old")


@contextmanager
def replace_directory(directory: str | os.PathLike) -> Iterator[Path]:
    """Build a whole directory, then swap it in for ``directory`` atomically.

    Yields a hidden sibling ``.<name>.tmp`` to fill. When the block ends normally every file in it is
    fsync'd and it replaces ``directory`` with two renames (the previous copy waits in ``.<name>.old``
    in between, see :func:`previous_copy`); when the block raises, the temp folder is removed and the
    previous ``directory`` is left as it was.
    """
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp")
    old = previous_copy(directory)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_tree(tmp)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    fsync_tree(directory.parent, recursive=False)


def fsync_tree(directory: str | os.PathLike, recursive: bool = True) -> None:
    """fsync every file under ``directory`` (or only the directory entry itself with ``recursive=False``)."""
    directory = Path(directory)
    for path in [*directory.rglob("*")] if recursive else []:
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    try:  # the directory entries themselves (renames, new files); not supported on every platform
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
