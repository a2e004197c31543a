"""Tests of the Fashion-MNIST source (Debian package) and the multi-label mosaic set built from it.

The real data is prepared once into the repo's data/ folder (the .deb is cached in the registry cache);
idempotence and determinism are checked on fresh runs into tmp dirs that reuse that Fashion-MNIST copy.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA

from paddle_tag.data.sources import PREPARERS, SUBDIRS, prepare
import paddle_tag.data.sources.fashion_mnist as fm
from paddle_tag.data.sources.fashion_mnist import (
    ARTIFACT,
    CLASSES,
    FILES,
    load_fashion_mnist,
    load_idx_files,
    parse_idx,
    prepare_fashion_mnist,
    read_deb_files,
)
from paddle_tag.data.sources.fashion_mosaic import compose, load_fashion_mosaic, prepare_fashion_mosaic
from paddle_tag.data.sources.registry import Artifact, fetch, sha256_file
from paddle_tag.errors import ConfigError, DataError

MOSAIC_SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def fmnist() -> Path:
    prepare("fashion_mnist", DATA)
    return DATA / SUBDIRS["fashion_mnist"]


@pytest.fixture(scope="module")
def source(fmnist: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {s: load_fashion_mnist(fmnist, s) for s in ("train", "test")}


@pytest.fixture(scope="module")
def mosaic(fmnist: Path) -> Path:
    prepare("fashion_mosaic", DATA)
    return DATA / SUBDIRS["fashion_mosaic"]


def _with_source(root: Path, fmnist: Path) -> Path:
    """A tmp out_root whose fashion_mnist/ is the prepared copy (so mosaics do not re-decode it)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "fashion_mnist").symlink_to(fmnist.resolve(), target_is_directory=True)
    return root


# --- Fashion-MNIST ----------------------------------------------------------------------------

def test_registered() -> None:
    assert PREPARERS["fashion_mnist"] is prepare_fashion_mnist
    assert PREPARERS["fashion_mosaic"] is prepare_fashion_mosaic
    assert SUBDIRS["fashion_mnist"] == "fashion_mnist" and SUBDIRS["fashion_mosaic"] == "fashion_mosaic"


def test_shapes_counts_and_labels(fmnist: Path, source) -> None:
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = source[split]
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert labels.min() == 0 and labels.max() == 9
        assert (np.bincount(labels) == n // 10).all()
        assert 0.25 < images.mean() / 255 < 0.32  # Fashion-MNIST's pixel mean is 0.286
    names = json.loads((fmnist / "labels.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in names] == ["T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫",
                                          "运动鞋", "包", "短靴"]
    assert [r["name_en"] for r in names] == [en for en, _ in CLASSES]


def test_provenance_is_pinned(fmnist: Path) -> None:
    doc = json.loads((fmnist / "SOURCE.json").read_text(encoding="utf-8"))
    assert (doc["registry"], doc["package"], doc["version"]) == ("debian", "dataset-fashion-mnist",
                                                                 "0.0~git20200523.55506a9-1")
    assert doc["archive_sha256"] == ARTIFACT.sha256
    assert doc["counts"]["train"] == 60_000 and doc["counts"]["test"] == 10_000
    assert {name: sha256_file(fmnist / name) for name in doc["outputs"]} == doc["outputs"]
    deb, digest = fetch(ARTIFACT)  # cached by the fixture: no download
    assert digest == ARTIFACT.sha256 and deb.name == ARTIFACT.filename


def test_fresh_run_is_identical_and_rerun_is_skipped(fmnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "fashion_mnist"
    assert prepare_fashion_mnist(out)["skipped"] is False
    for name in ("train.npz", "test.npz", "labels.json"):
        assert sha256_file(out / name) == sha256_file(fmnist / name)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = prepare_fashion_mnist(out)
    assert again["skipped"] is True and again["train"] == 60_000
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    (out / "labels.json").write_text("[]", encoding="utf-8")  # a damaged output is redone
    assert prepare_fashion_mnist(out)["skipped"] is False
    assert sha256_file(out / "labels.json") == sha256_file(fmnist / "labels.json")


def test_debian_registry_errors_name_apt(tmp_path: Path) -> None:
    art = Artifact("debian", ARTIFACT.package, "0.0~no-such-version", "x.deb")
    assert art.spec == "dataset-fashion-mnist=0.0~no-such-version"
    with pytest.raises(DataError, match="apt-get download exited .*not found.*apt-get update"):
        fetch(art, tmp_path)


def test_installed_copy_used_only_when_its_sha256_matches(tmp_path: Path, monkeypatch) -> None:
    deb, _ = fetch(ARTIFACT)
    for name, data in read_deb_files(deb, list(FILES)).items():
        (tmp_path / name).write_bytes(data)
    monkeypatch.setattr(fm, "INSTALLED_DIR", tmp_path)
    files, origin = load_idx_files()
    assert "installed" in origin and set(files) == set(FILES)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"changed")
    files, origin = load_idx_files()
    assert origin.startswith(ARTIFACT.filename)
    assert fm.hashlib.sha256(files["t10k-labels-idx1-ubyte.gz"]).hexdigest() == FILES["t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(scope="module")
def idx_files() -> dict[str, bytes]:
    deb, _ = fetch(ARTIFACT)
    return read_deb_files(deb, ["t10k-labels-idx1-ubyte.gz"])


def test_parse_idx_reads_the_real_labels(idx_files, source) -> None:
    labels = parse_idx(idx_files["t10k-labels-idx1-ubyte.gz"], "t10k-labels", 1)
    assert np.array_equal(labels, source["test"][1])


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:-10], "holds"),                              # truncated values
    (lambda raw: b"\x00\x00\x08\x03" + raw[4:], "magic"),          # wrong number of dimensions
    (lambda raw: b"\x00\x00\x0d\x01" + raw[4:], "magic"),          # float type code
    (lambda raw: raw[:6], "truncated IDX header"),
])
def test_corrupt_idx_gives_a_clear_error(idx_files, damage, message) -> None:
    raw = gzip.decompress(idx_files["t10k-labels-idx1-ubyte.gz"])
    with pytest.raises(DataError, match=message) as info:
        parse_idx(gzip.compress(damage(raw)), "t10k-labels-idx1-ubyte.gz", 1)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)


def test_not_gzip_and_not_deb(idx_files, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a valid gzip"):
        parse_idx(idx_files["t10k-labels-idx1-ubyte.gz"][:200], "labels.gz", 1)
    bogus = tmp_path / "x.deb"
    bogus.write_bytes(b"PK\x03\x04 not an ar archive")
    with pytest.raises(DataError, match="not a Debian package"):
        read_deb_files(bogus, list(FILES))


# --- mosaics ------------------------------------------------------------------------------------

def test_mosaic_tags_are_the_quadrants_classes(mosaic: Path, source) -> None:
    """Find every quadrant's item by its pixels (all 70,000 images are distinct) and re-derive the tags."""
    lookup = {s: {img.tobytes(): i for i, img in enumerate(source[s][0])} for s in ("train", "test")}
    assert len(lookup["train"]) == 60_000 and len(lookup["test"]) == 10_000
    used: dict[str, set[bytes]] = {}
    doc = json.loads((mosaic / "SOURCE.json").read_text(encoding="utf-8"))
    for split in MOSAIC_SPLITS:
        images, labels, items = load_fashion_mosaic(mosaic, split)
        assert images.shape == (doc["counts"][split], 56, 56) and images.dtype == np.uint8
        assert labels.shape == (len(images), 10) and set(np.unique(labels)) <= {0, 1}
        src = "test" if split == "test" else "train"
        quads = images.reshape(-1, 2, 28, 2, 28).transpose(0, 1, 3, 2, 4).reshape(-1, 4, 28, 28)
        found = np.array([[lookup[src][q.tobytes()] for q in row] for row in quads])
        assert np.array_equal(found, items)
        derived = np.zeros_like(labels)
        np.put_along_axis(derived, source[src][1][found], 1, axis=1)
        assert np.array_equal(derived, labels)
        n_tags = labels.sum(axis=1)
        assert n_tags.min() == 1 and n_tags.max() == 4
        assert {str(k): int((n_tags == k).sum()) for k in range(1, 5)} == doc["counts"][f"{split}_tag_counts"]
        used[split] = {q.tobytes() for q in quads.reshape(-1, 28, 28)}
    # no item shared across splits (pixel-level, so also no duplicate image across train and test)
    assert not used["train"] & used["dev"] and not used["train"] & used["test"] and not used["dev"] & used["test"]
    assert json.loads((mosaic / "labels.json").read_text(encoding="utf-8"))[0]["name"] == "T恤/上衣"


def test_mosaic_is_deterministic_and_seed_dependent(fmnist: Path, tmp_path: Path) -> None:
    sizes = {"train": 120, "dev": 40, "test": 40}
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = _with_source(tmp_path / name, fmnist) / "fashion_mosaic"
        counts = prepare_fashion_mosaic(out, seed=seed, **sizes)
        assert counts["skipped"] is False and counts["train"] == 120
        runs.append({s: sha256_file(out / f"{s}.npz") for s in MOSAIC_SPLITS})
    assert runs[0] == runs[1] and runs[0] != runs[2]
    out = tmp_path / "a" / "fashion_mosaic"
    stamp = (out / "train.npz").stat().st_mtime_ns
    assert prepare_fashion_mosaic(out, seed=3, **sizes)["skipped"] is True
    assert (out / "train.npz").stat().st_mtime_ns == stamp
    assert prepare_fashion_mosaic(out, seed=3, train=100, dev=40, test=40)["skipped"] is False


def test_mosaic_reuses_items_only_when_the_pool_runs_out(fmnist: Path, tmp_path: Path, source) -> None:
    out = _with_source(tmp_path, fmnist) / "fashion_mosaic"
    counts = prepare_fashion_mosaic(out, train=100, dev=10, test=3000, tag_count_probs=[1.0, 0, 0, 0])
    assert counts["test_items_reused"] == 2000 and counts["train_items_reused"] == 0
    assert counts["test_tag_counts"] == {"1": 3000, "2": 0, "3": 0, "4": 0}
    images, labels, items = load_fashion_mosaic(out, "test")
    assert np.array_equal(compose(source["test"][0], items), images)
    assert len(np.unique(items)) == 10_000  # every test item is used before any is reused


@pytest.mark.parametrize("kw", [{"train": 0}, {"dev": -1}, {"test": 2.5}, {"seed": -1},
                                {"tag_count_probs": [0.5, 0.5]}, {"tag_count_probs": [0.5, 0.5, 0.5, -0.5]},
                                {"tag_count_probs": [0.2, 0.2, 0.2, 0.2]}])
def test_mosaic_bad_settings(kw, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        prepare_fashion_mosaic(tmp_path / "fashion_mosaic", **kw)
    assert not os.listdir(tmp_path)
