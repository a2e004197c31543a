"""Load and validate an export directory (``manifest.json`` and the files it lists) at start-up.

The directory contract (written by ``tools/export_model.py``)::

    model.onnx  model_fp16.onnx  model_int8.onnx   input "input_ids" int64 [batch, sequence]
                                                   (or [batch, windows, sequence]: format_version 2, "windows"),
                                                   + "char_ids" int64 [batch, chars] (format_version 2, "wide"),
                                                   output "logits" float32 [batch, num_labels]
    tokenizer.json  labels.json  manifest.json

Format version 2 adds ``windows`` (``{"overlap", "max_windows"}`` or null: a long text is read as overlapping
windows of ``max_seq_len`` tokens) and ``wide`` (``{"ngram_max", "buckets", "idf", "max_chars"}`` or null: the
model also takes the code points of the text's first ``max_chars`` characters and hashes their n-grams itself).

Everything that can be checked without running the model is checked here (format version, task,
labels, thresholds, every listed file's presence and sha256); :func:`check_session` then checks the
ONNX Runtime session's inputs and outputs against the manifest. Every failure raises
:class:`ManifestError` naming the file and the reason.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.export_dir import (
    MANIFEST,
    TAGGER,
    ManifestError,
    listed_files,
    read_json,
    read_manifest_doc,
    require,
    safe_path,
    verify_files,
)

LABELS_FILE = "labels.json"
SUPPORTED_FORMAT_VERSIONS = (1, 2)
TASK_ACTIVATION = {"multi_class": "softmax", "multi_label": "sigmoid"}
PRECISIONS = ("fp32", "fp16", "int8")
#: ONNX Runtime type strings accepted for the logits output (fp16 exports may keep fp16 outputs).
LOGITS_TYPES = ("tensor(float)", "tensor(float16)")


@dataclass(frozen=True)
class TensorSpec:
    """One declared model input or output."""

    name: str
    dtype: str
    shape: tuple[Any, ...]


@dataclass(frozen=True)
class Windows:
    """How a long text is read: windows of ``max_seq_len`` tokens sharing ``overlap`` tokens, at most
    ``max_windows`` of them."""

    overlap: int
    max_windows: int


@dataclass(frozen=True)
class Wide:
    """The wide part's input: code points of the first ``max_chars`` characters, padded to >= ``ngram_max``
    (the model hashes the n-grams into ``buckets`` rows and weighs them by ``idf`` itself)."""

    ngram_max: int
    buckets: int
    max_chars: int
    idf: bool = False


@dataclass(frozen=True)
class Manifest:
    """A validated export directory. Paths are absolute; ``models`` maps precision → model file."""

    root: Path
    format_version: int
    task: str
    labels: tuple[str, ...]
    thresholds: tuple[float, ...] | None
    activation: str
    max_seq_len: int
    pad_id: int
    inputs: tuple[TensorSpec, ...]
    output: TensorSpec
    tokenizer_file: Path
    models: dict[str, Path]
    files: dict[str, str]
    raw: dict[str, Any] = field(repr=False, compare=False)
    windows: Windows | None = None
    wide: Wide | None = None

    @property
    def input(self) -> TensorSpec:
        """The token-id input (``input_ids``)."""
        return self.inputs[0]

    @property
    def num_labels(self) -> int:
        """How many labels (the logits width)."""
        return len(self.labels)

    def model_file(self, precision: str) -> Path:
        """The model file for ``precision``; :class:`ManifestError` if the export has none."""
        if precision not in self.models:
            have = ", ".join(sorted(self.models)) or "none"
            raise ManifestError(f"{self.root / MANIFEST}: no {precision} model in this export "
                                f"(models: {have})")
        return self.models[precision]


def _tensor_specs(doc: Mapping[str, Any], key: str, where: str, count: int) -> tuple[TensorSpec, ...]:
    specs = require(doc, key, list, where)
    if len(specs) != count or not all(isinstance(s, dict) for s in specs):
        raise ManifestError(f"{where}: {key!r} must list exactly {count} tensor(s), got {specs!r}")
    out = []
    for i, spec in enumerate(specs):
        name = require(spec, "name", str, f"{where} {key}[{i}]")
        dtype = require(spec, "dtype", str, f"{where} {key}[{i}]")
        shape = require(spec, "shape", list, f"{where} {key}[{i}]")
        out.append(TensorSpec(name=name, dtype=dtype, shape=tuple(shape)))
    return tuple(out)


def _int_fields(doc: Mapping[str, Any], key: str, fields: tuple[str, ...], where: str,
                minimum: dict[str, int]) -> dict[str, int] | None:
    """``doc[key]``: null, or an object of exactly ``fields``, each an int >= its minimum (default 1)."""
    entry = doc.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict) or sorted(entry) != sorted(fields):
        raise ManifestError(f"{where}: {key!r} must be null or an object with exactly {list(fields)}, got {entry!r}")
    for name in fields:
        value = require(entry, name, int, f"{where} {key}")
        if value < minimum.get(name, 1):
            raise ManifestError(f"{where}: {key}.{name} must be >= {minimum.get(name, 1)}, got {value}")
    return dict(entry)


def load_manifest(model_dir: str | os.PathLike[str], verify_hashes: bool = True) -> Manifest:
    """Read ``<model_dir>/manifest.json`` and validate the directory against it.

    Checks: supported ``format_version``; task/activation pair; labels (non-empty, unique strings)
    equal to ``labels.json``; thresholds (multi-label: one finite value in [0, 1] per label);
    ``max_seq_len``/``pad_id``; one input and one output whose width is ``len(labels)``; the tokenizer
    and every model file are listed in ``files``; every listed file exists and (``verify_hashes``)
    its sha256 matches.
    """
    root, doc = read_manifest_doc(model_dir)
    where = str(root / MANIFEST)
    if doc.get("kind", TAGGER) != TAGGER:
        raise ManifestError(f"{where}: this is a {doc.get('kind')} export, not a tagger (serve it with "
                            "python -m deploy.serve, which answers POST /recommend for it)")

    version = require(doc, "format_version", int, where)
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ManifestError(f"{where}: format_version {version} is not supported by this deploy "
                            f"package (supported: {', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))})")
    task = require(doc, "task", str, where)
    if task not in TASK_ACTIVATION:
        raise ManifestError(f"{where}: task must be one of {sorted(TASK_ACTIVATION)}, got {task!r}")
    activation = require(doc, "activation", str, where)
    if activation != TASK_ACTIVATION[task]:
        raise ManifestError(f"{where}: task {task} needs activation {TASK_ACTIVATION[task]!r}, "
                            f"got {activation!r}")

    labels = require(doc, "labels", list, where)
    if not labels or not all(isinstance(x, str) and x for x in labels):
        raise ManifestError(f"{where}: 'labels' must be a non-empty list of non-empty strings")
    if len(set(labels)) != len(labels):
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        raise ManifestError(f"{where}: duplicate labels {dupes}")

    thresholds = _thresholds(doc, task, labels, where)
    max_seq_len = require(doc, "max_seq_len", int, where)
    if max_seq_len < 2:
        raise ManifestError(f"{where}: max_seq_len must be >= 2, got {max_seq_len}")
    pad_id = require(doc, "pad_id", int, where)
    if pad_id < 0:
        raise ManifestError(f"{where}: pad_id must be >= 0, got {pad_id}")

    windows = wide = None
    if version >= 2:
        for key in ("windows", "wide"):
            if key not in doc:
                raise ManifestError(f"{where}: missing key {key!r} (format_version {version})")
        raw_windows = _int_fields(doc, "windows", ("overlap", "max_windows"), where, {"overlap": 0})
        wide_doc = dict(doc["wide"]) if isinstance(doc.get("wide"), dict) else doc.get("wide")
        idf = wide_doc.pop("idf", False) if isinstance(wide_doc, dict) else False
        if not isinstance(idf, bool):
            raise ManifestError(f"{where}: wide.idf must be true or false, got {idf!r}")
        raw_wide = _int_fields({"wide": wide_doc}, "wide", ("ngram_max", "buckets", "max_chars"), where, {})
        windows = Windows(**raw_windows) if raw_windows else None
        wide = Wide(**raw_wide, idf=idf) if raw_wide else None
        if windows is not None and windows.overlap > max_seq_len - 3:
            raise ManifestError(f"{where}: windows.overlap {windows.overlap} must be at most max_seq_len - 3 "
                                f"= {max_seq_len - 3} (each window must advance)")
    input_specs = _tensor_specs(doc, "inputs", where, 2 if wide else 1)
    input_spec = input_specs[0]
    (output_spec,) = _tensor_specs(doc, "outputs", where, 1)
    rank = 3 if windows else 2
    if input_spec.dtype != "int64" or len(input_spec.shape) != rank:
        layout = "[batch, windows, sequence]" if windows else "[batch, sequence]"
        raise ManifestError(f"{where}: input {input_spec.name!r} must be int64 {layout}, "
                            f"got {input_spec.dtype} {list(input_spec.shape)}")
    if wide and (input_specs[1].dtype != "int64" or len(input_specs[1].shape) != 2):
        raise ManifestError(f"{where}: input {input_specs[1].name!r} must be int64 [batch, chars], "
                            f"got {input_specs[1].dtype} {list(input_specs[1].shape)}")
    if len(output_spec.shape) != 2 or output_spec.shape[1] != len(labels):
        raise ManifestError(f"{where}: output {output_spec.name!r} must be [batch, {len(labels)}] "
                            f"(one column per label), got {list(output_spec.shape)}")

    files = listed_files(root, doc, where)

    tokenizer = require(doc, "tokenizer", dict, where)
    tokenizer_name = require(tokenizer, "file", str, f"{where} tokenizer")
    models_doc = require(doc, "models", dict, where)
    if not models_doc:
        raise ManifestError(f"{where}: 'models' is empty")
    models: dict[str, Path] = {}
    for precision, entry in models_doc.items():
        if precision not in PRECISIONS:
            raise ManifestError(f"{where}: unknown model precision {precision!r} "
                                f"(known: {', '.join(PRECISIONS)})")
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: models[{precision!r}] must be an object with 'file'")
        models[precision] = safe_path(root, require(entry, "file", str, f"{where} models.{precision}"),
                                       f"{where} models.{precision}")
    for name in [tokenizer_name, LABELS_FILE] + [str(p.relative_to(root)) for p in models.values()]:
        if name not in files:
            raise ManifestError(f"{where}: {name} is not listed in 'files' (so it cannot be verified)")

    verify_files(root, files, verify_hashes)

    file_labels = read_json(root / LABELS_FILE)
    if file_labels != labels:
        raise ManifestError(f"{root / LABELS_FILE}: labels differ from {MANIFEST} "
                            f"({len(file_labels) if isinstance(file_labels, list) else '?'} vs "
                            f"{len(labels)} labels; first difference: {_first_diff(file_labels, labels)})")

    return Manifest(root=root, format_version=version, task=task, labels=tuple(labels),
                    thresholds=thresholds, activation=activation, max_seq_len=max_seq_len,
                    pad_id=pad_id, inputs=input_specs, output=output_spec,
                    tokenizer_file=safe_path(root, tokenizer_name, where), models=models,
                    files=dict(files), raw=doc, windows=windows, wide=wide)


def _thresholds(doc: Mapping[str, Any], task: str, labels: Sequence[str],
                where: str) -> tuple[float, ...] | None:
    raw = doc.get("thresholds")
    if task == "multi_class":
        return None
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: a multi_label export needs 'thresholds' {{label: value}} "
                            f"for every label, got {raw!r}")
    if set(raw) != set(labels):
        missing = [x for x in labels if x not in raw]
        extra = sorted(set(raw) - set(labels))
        raise ManifestError(f"{where}: threshold keys differ from labels (missing {missing}, "
                            f"unknown {extra})")
    values = []
    for label in labels:
        value = raw[label]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0.0 <= value <= 1.0:
            raise ManifestError(f"{where}: threshold for {label!r} must be a number in [0, 1], "
                                f"got {value!r}")
        values.append(float(value))
    return tuple(values)


def _first_diff(a: Any, b: Sequence[str]) -> str:
    if not isinstance(a, list):
        return f"{LABELS_FILE} is not a list"
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"index {i}: {x!r} vs {y!r}"
    return f"lengths {len(a)} vs {len(b)}"


def check_session(manifest: Manifest, session: Any, model_path: Path) -> None:
    """Check an ``onnxruntime.InferenceSession`` against the manifest: names, dtypes, logits width.

    A symbolic (dynamic) logits width passes here; :class:`deploy.predictor.Predictor` checks the
    width of a real output at start-up as well.
    """
    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    declared = [spec.name for spec in manifest.inputs]
    if names != declared:
        raise ManifestError(f"{model_path}: the model takes inputs {names}, the manifest declares {declared}")
    for actual, spec in zip(inputs, manifest.inputs):
        if actual.type != "tensor(int64)":
            raise ManifestError(f"{model_path}: input {actual.name!r} is {actual.type}, expected tensor(int64)")
        if len(actual.shape) != len(spec.shape):
            raise ManifestError(f"{model_path}: input {actual.name!r} has shape {actual.shape}, "
                                f"the manifest declares {list(spec.shape)}")
    outputs = {o.name: o for o in session.get_outputs()}
    out = outputs.get(manifest.output.name)
    if out is None:
        raise ManifestError(f"{model_path}: no output named {manifest.output.name!r} "
                            f"(outputs: {sorted(outputs)})")
    if out.type not in LOGITS_TYPES:
        raise ManifestError(f"{model_path}: output {out.name!r} is {out.type}, expected tensor(float)")
    if len(out.shape) != 2:
        raise ManifestError(f"{model_path}: output {out.name!r} has shape {out.shape}, "
                            "expected [batch, num_labels]")
    width = out.shape[1]
    if isinstance(width, int) and width != manifest.num_labels:
        raise ManifestError(f"{model_path}: output {out.name!r} has {width} columns but the export has "
                            f"{manifest.num_labels} labels")
