"""Fashion-MNIST (70,000 28×28 grayscale clothing images, 10 classes) from the Debian package.

The Debian package ``dataset-fashion-mnist`` (``apt-get download``, no root needed) ships the four
IDX files of the original release under ``/usr/share/datasets/fashion-mnist/``. :func:`prepare_fashion_mnist`
reads them straight out of the ``.deb`` (an ``ar`` archive holding ``data.tar.xz``), or from an
installed copy of the package when each file's sha256 equals the pin, validates the IDX headers and
writes ``train.npz`` / ``test.npz`` (``images`` uint8 ``(N, 28, 28)``, ``labels`` int64 ``(N,)``),
``labels.json`` (the class names in English and Chinese, in label-id order) and ``SOURCE.json``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import math
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from paddle_tag.data.sources import registry
from paddle_tag.errors import DataError
from paddle_tag.utils.io import atomic_write_bytes, atomic_write_json, sha256_file

logger = logging.getLogger(__name__)

ARTIFACT = registry.Artifact(registry="debian", package="dataset-fashion-mnist", version="0.0~git20200523.55506a9-1",
                             filename="dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
                             sha256="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0")
#: Where the files are inside the .deb's data archive, and once the package is installed.
MEMBER_DIR = "./usr/share/datasets/fashion-mnist"
INSTALLED_DIR = Path("/usr/share/datasets/fashion-mnist")
#: IDX file -> its pinned sha256 (the same in the .deb and in an installed copy).
FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
#: Output split -> (images file, labels file, number of items).
SPLIT_FILES: dict[str, tuple[str, str, int]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}
#: (English, Chinese) class names, in label-id order.
CLASSES: tuple[tuple[str, str], ...] = (
    ("T-shirt/top", "T恤/上衣"), ("Trouser", "裤子"), ("Pullover", "套头衫"), ("Dress", "连衣裙"),
    ("Coat", "外套"), ("Sandal", "凉鞋"), ("Shirt", "衬衫"), ("Sneaker", "运动鞋"), ("Bag", "包"),
    ("Ankle boot", "短靴"),
)
SIZE = 28
LICENCE = "MIT (Expat), Copyright 2017 Zalando SE; Debian packaging (c) 2019-2020 Mo Zhou, MIT."
FORMAT_VERSION = 1


def read_deb_files(deb: str | os.PathLike[str], names: list[str]) -> dict[str, bytes]:
    """Return ``{name: bytes}`` of files under :data:`MEMBER_DIR` inside a ``.deb``.

    A ``.deb`` is an ``ar`` archive whose ``data.tar.{xz,gz,bz2}`` member holds the files.
    Raises :class:`DataError` when it is not one or a file is missing.
    """
    raw = Path(deb).read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise DataError(f"{deb}: not a Debian package (no ar archive header)")
    pos, data = 8, None
    while pos + 60 <= len(raw):
        header = raw[pos:pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58])
        except ValueError:
            raise DataError(f"{deb}: corrupt ar header at byte {pos}") from None
        if name.startswith("data.tar"):
            data = raw[pos + 60:pos + 60 + size]
            break
        pos += 60 + size + (size % 2)
    if data is None:
        raise DataError(f"{deb}: no data.tar.* member in the Debian package")
    out: dict[str, bytes] = {}
    member = ""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            for name in names:
                member = f"{MEMBER_DIR}/{name}"
                fh = tf.extractfile(member)
                if fh is None:
                    raise KeyError(member)
                out[name] = fh.read()
    except KeyError:
        raise DataError(f"{deb}: no file {member} inside the package") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{deb}: cannot read its data archive: {exc}") from None
    return out


def parse_idx(data: bytes, name: str, ndim: int) -> np.ndarray:
    """Decode a gzipped IDX file of unsigned bytes with ``ndim`` dimensions into a uint8 array.

    IDX: two zero bytes, the type code ``0x08`` (unsigned byte), the number of dimensions, each
    dimension as a big-endian int32, then the values. Raises :class:`DataError` naming ``name`` for
    a file that is not gzip, has another magic number, or whose size differs from its header.
    """
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: not a valid gzip file ({exc})") from None
    magic = raw[:4]
    if len(magic) < 4 or magic[:3] != b"\x00\x00\x08" or magic[3] != ndim:
        raise DataError(f"{name}: bad IDX magic number {magic.hex()!r}; expected "
                        f"{bytes([0, 0, 8, ndim]).hex()!r} (unsigned bytes, {ndim} dimensions)")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{name}: truncated IDX header ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:head], dtype=">i4"))
    expected = head + math.prod(dims)
    if len(raw) != expected:
        raise DataError(f"{name}: IDX header says dimensions {dims} ({expected} bytes in all), "
                        f"but the file holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def _installed_files() -> dict[str, bytes] | None:
    """The installed package's files, if all are there with the pinned sha256."""
    out = {}
    for name, digest in FILES.items():
        path = INSTALLED_DIR / name
        if not path.is_file():
            return None
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            logger.info("fashion_mnist: %s differs from the pinned file, using the .deb", path)
            return None
        out[name] = data
    return out


def load_idx_files(cache_dir: str | os.PathLike[str] | None = None) -> tuple[dict[str, bytes], str]:
    """The four gzipped IDX files (``{name: bytes}``) and where they came from, all sha256-checked.

    Uses an installed ``dataset-fashion-mnist`` when its files match the pins, else downloads
    the pinned ``.deb`` into the cache (see :func:`~paddle_tag.data.sources.registry.fetch`).
    """
    files = _installed_files()
    if files is not None:
        return files, f"installed package files in {INSTALLED_DIR}"
    deb, _ = registry.fetch(ARTIFACT, cache_dir)
    files = read_deb_files(deb, list(FILES))
    for name, digest in FILES.items():
        got = hashlib.sha256(files[name]).hexdigest()
        if got != digest:
            raise DataError(f"{deb}: {name} has sha256 {got}, not the pinned {digest}")
    return files, f"{ARTIFACT.filename} (apt-get download {ARTIFACT.spec})"


def decode_split(files: dict[str, bytes], split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 28, 28), labels int64 (N,))`` of ``split`` ("train" or "test"), validated."""
    images_name, labels_name, count = SPLIT_FILES[split]
    images = parse_idx(files[images_name], images_name, 3)
    labels = parse_idx(files[labels_name], labels_name, 1).astype(np.int64)
    if images.shape != (count, SIZE, SIZE) or labels.shape != (count,):
        raise DataError(f"{split}: expected {count} images of {SIZE}×{SIZE} and {count} labels, got "
                        f"images {images.shape} and labels {labels.shape}")
    if labels.min() < 0 or labels.max() >= len(CLASSES):
        raise DataError(f"{labels_name}: labels must be in [0, {len(CLASSES)}), "
                        f"got [{labels.min()}, {labels.max()}]")
    return images, labels


def load_fashion_mnist(folder: str | os.PathLike[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a prepared ``<folder>/<split>.npz``: ``(images uint8 (N, 28, 28), labels int64 (N,))``."""
    path = Path(folder) / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path} not found; run `python tools/prepare_data.py fashion_mnist`")
    with np.load(path) as npz:
        return npz["images"], npz["labels"]


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def prepare_fashion_mnist(
    out_dir: str | os.PathLike[str] = "data/fashion_mnist",
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Fetch, validate and write Fashion-MNIST; return the counts recorded in ``SOURCE.json``.

    Skips the work (returning the recorded counts) when ``out_dir`` already holds intact outputs
    of the same package and format, unless ``force``.
    """
    out = Path(out_dir)
    settings = {"archive_sha256": ARTIFACT.sha256, "files": FILES, "format": FORMAT_VERSION}
    skipped = registry.prepared_counts("fashion_mnist", out, settings, force)
    if skipped is not None:
        return skipped

    files, origin = load_idx_files(cache_dir)
    outputs: dict[str, str] = {}
    counts: dict[str, Any] = {"classes": len(CLASSES)}
    for split in SPLIT_FILES:
        images, labels = decode_split(files, split)
        atomic_write_bytes(out / f"{split}.npz", _npz_bytes(images=images, labels=labels))
        outputs[f"{split}.npz"] = sha256_file(out / f"{split}.npz")
        counts[split] = int(len(labels))
        counts[f"{split}_per_class"] = {CLASSES[c][1]: int(n) for c, n in
                                        enumerate(np.bincount(labels, minlength=len(CLASSES)))}
    atomic_write_json(out / "labels.json", [{"id": i, "name": zh, "name_en": en}
                                            for i, (en, zh) in enumerate(CLASSES)])
    outputs["labels.json"] = sha256_file(out / "labels.json")
    registry.write_provenance(
        out / "SOURCE.json", artifact=ARTIFACT, archive_sha256=ARTIFACT.sha256,
        files_inside=[f"{MEMBER_DIR}/{name}" for name in FILES], licence=LICENCE,
        settings=settings, outputs=outputs, counts=counts,
        steps=[
            f"read the four IDX files from {origin}; each file's sha256 checked against its pin",
            "checked the IDX magic numbers (unsigned bytes; 3 dims for images, 1 for labels) and sizes",
            "wrote train.npz / test.npz with np.savez: images uint8 (N, 28, 28), labels int64 (N,)",
            "labels.json: class names in label-id order, name (Chinese) and name_en (original)",
        ],
    )
    logger.info("fashion_mnist: train %d / test %d images", counts["train"], counts["test"])
    return dict(counts, skipped=False)
