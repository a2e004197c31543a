"""manifest.json: hashes match, and validation rejects a changed file, a missing file, mismatched labels."""
from __future__ import annotations

import json
import shutil

import pytest

from paddle_tag.errors import ManifestError
from paddle_tag.export.manifest import KEYS, file_hashes, read_manifest, validate_manifest, write_manifest
from paddle_tag.utils.io import sha256_file


@pytest.fixture()
def copy(mc_export, tmp_path):
    out = tmp_path / "export"
    shutil.copytree(mc_export, out)
    return out


def manifest_of(directory) -> dict:
    return json.loads((directory / "manifest.json").read_text(encoding="utf-8"))


def test_manifest_keys_and_hashes(mc_export):
    manifest = manifest_of(mc_export)
    assert list(manifest) == list(KEYS[1])  # a plain model keeps format 1, readable by older deploy/ packages
    assert manifest["files"] == {name: sha256_file(mc_export / name) for name in manifest["files"]}
    assert set(manifest["files"]) == set(file_hashes(mc_export)) and "manifest.json" not in manifest["files"]
    assert manifest["models"] == {"fp32": {"file": "model.onnx"}, "fp16": {"file": "model_fp16.onnx"},
                                  "int8": {"file": "model_int8.onnx"}}
    assert manifest["tokenizer"] == {"file": "tokenizer.json"}


def test_changed_file_is_rejected(copy):
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="model.onnx has changed"):
        read_manifest(copy)
    read_manifest(copy, verify_files=False)  # structure alone is still fine


def test_missing_and_unlisted_files_are_rejected(copy):
    (copy / "paddle" / "model.pdiparams").rename(copy / "stray.bin")
    with pytest.raises(ManifestError, match="paddle/model.pdiparams is missing"):
        read_manifest(copy)
    (copy / "stray.bin").rename(copy / "paddle" / "model.pdiparams")
    read_manifest(copy)
    (copy / "notes.txt").write_text("added later", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"not listed in the manifest: \['notes.txt'\]"):
        read_manifest(copy)


def test_labels_mismatch_is_rejected(copy):
    labels = json.loads((copy / "labels.json").read_text(encoding="utf-8"))
    (copy / "labels.json").write_text(json.dumps(labels[::-1], ensure_ascii=False), encoding="utf-8")
    manifest = manifest_of(copy)
    manifest["files"]["labels.json"] = sha256_file(copy / "labels.json")  # a consistent hash, wrong labels
    with pytest.raises(ManifestError, match="labels.json .* differs from the manifest's labels"):
        validate_manifest(copy, manifest)
    manifest = manifest_of(copy)
    manifest["labels"] = manifest["labels"][:-1]
    with pytest.raises(ManifestError, match="outputs .* differ"):
        validate_manifest(copy, manifest, verify_files=False)


def test_bad_values_are_rejected(ml_export):
    good = manifest_of(ml_export)
    validate_manifest(ml_export, good)
    cases = [("format_version", 3, "format_version 3 is not supported"),
             ("format_version", 2, r"missing keys \['windows', 'wide'\]"), ("task", "regression", "task 'regression'"),
             ("activation", "softmax", "does not fit task multi_label"), ("thresholds", None, "thresholds must map"),
             ("max_seq_len", 2, "at least 3"), ("pad_id", -1, "non-negative"),
             ("models", {"fp16": {"file": "model_fp16.onnx"}}, "at least fp32")]
    for key, value, message in cases:
        with pytest.raises(ManifestError, match=message):
            validate_manifest(ml_export, {**good, key: value}, verify_files=False)
    broken = dict(good)
    del broken["parity"]
    with pytest.raises(ManifestError, match=r"missing keys \['parity'\]"):
        validate_manifest(ml_export, broken, verify_files=False)
    thresholds = dict(good["thresholds"])
    thresholds[next(iter(thresholds))] = 1.5
    with pytest.raises(ManifestError, match=r"in \[0, 1\]"):
        validate_manifest(ml_export, {**good, "thresholds": thresholds}, verify_files=False)


def test_windows_and_wide_entries_are_checked(long_export):
    good = manifest_of(long_export)
    validate_manifest(long_export, good)
    assert list(good) == list(KEYS[2])
    cases = [("windows", {"overlap": 8}, "windows must be null or an object"),
             ("windows", {"overlap": -1, "max_windows": 6}, "windows.overlap must be a non-negative"),
             ("windows", {"overlap": 30, "max_windows": 6}, "at most max_seq_len - 3"),
             ("wide", {"ngram_max": 0, "buckets": 4096, "idf": True, "max_chars": 100}, "wide.ngram_max must be a positive"),
             ("wide", {"ngram_max": 2, "buckets": 4096, "max_chars": 100}, "whose idf is true or false"),
             ("format_version", 1, "missing keys|does not fit"),
             ("windows", None, "inputs .* differ")]
    for key, value, message in cases:
        with pytest.raises(ManifestError, match=message):
            validate_manifest(long_export, {**good, key: value}, verify_files=False)
    with pytest.raises(ManifestError, match="format_version 2 does not fit"):
        validate_manifest(long_export, {**good, "windows": None, "wide": None}, verify_files=False)


def test_write_manifest_rehashes(copy):
    manifest = manifest_of(copy)
    (copy / "labels.json").write_text((copy / "labels.json").read_text(encoding="utf-8"), encoding="utf-8")
    (copy / "tokenizer.json").write_bytes((copy / "tokenizer.json").read_bytes() + b"\n")
    written = write_manifest(copy, manifest)
    assert written["files"]["tokenizer.json"] == sha256_file(copy / "tokenizer.json")
    read_manifest(copy)
