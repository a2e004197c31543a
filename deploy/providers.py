"""ONNX Runtime sessions on CPU or GPU, with the model file picked by precision.

``gpu`` asks for CUDA (and TensorRT first when ``trt``) and fails loudly when this onnxruntime build
or machine cannot give it — at start-up and again after the session is built, because ONNX Runtime
silently falls back to the CPU when the CUDA libraries cannot be loaded. ``cpu`` uses the CPU
provider with ``threads`` intra-op threads and every graph optimisation.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import onnxruntime as ort

from deploy import DeployError
from deploy.manifest import PRECISIONS, Manifest

logger = logging.getLogger(__name__)

DEVICES = ("cpu", "gpu")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


class ProviderError(DeployError):
    """The requested device / precision cannot be served by this onnxruntime build or machine."""


def pick_model(manifest: Manifest, device: str, precision: str) -> Path:
    """The model file for ``precision`` on ``device``: int8 on GPU is refused, fp16 on CPU warns."""
    if device not in DEVICES:
        raise ProviderError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    if precision not in PRECISIONS:
        raise ProviderError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if device == "gpu" and precision == "int8":
        raise ProviderError("--precision int8 is a dynamically quantized CPU model (its integer ops have "
                            "no CUDA kernels); use --precision fp16 or fp32 on --device gpu, "
                            "or int8 on --device cpu")
    if device == "cpu" and precision == "fp16":
        logger.warning("--precision fp16 on --device cpu is usually slower than fp32 (the CPU provider "
                       "lacks most fp16 kernels and inserts casts); prefer fp32 or int8 on CPU")
    return manifest.model_file(precision)


def available_providers() -> list[str]:
    """``onnxruntime.get_available_providers()`` (a function so tests can stand in for it)."""
    return list(ort.get_available_providers())


def _session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        if threads < 0:
            raise ProviderError(f"--threads must be >= 0 (0 = one per core), got {threads}")
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only; the provider checks below say what went wrong
    return options


def trt_profile(max_batch_size: int, max_seq_len: int, manifest: Manifest | None = None) -> dict[str, str]:
    """TensorRT's min / opt / max shapes of every input, spanning every batch the server can send: token ids
    ``batch x sequence`` (or ``batch x windows x sequence``) and, with a wide part, ``batch x chars``."""
    windows = manifest.windows if manifest is not None else None
    wide = manifest.wide if manifest is not None else None
    ids = manifest.inputs[0].name if manifest is not None else "input_ids"
    low = [f"{ids}:1x1x1" if windows else f"{ids}:1x1"]
    high = [f"{ids}:{max_batch_size}x{windows.max_windows}x{max_seq_len}" if windows
            else f"{ids}:{max_batch_size}x{max_seq_len}"]
    if wide is not None:
        chars = manifest.inputs[1].name
        low.append(f"{chars}:1x{wide.ngram_max}")
        high.append(f"{chars}:{max_batch_size}x{max(wide.max_chars, wide.ngram_max)}")
    return {"trt_profile_min_shapes": ",".join(low), "trt_profile_opt_shapes": ",".join(high),
            "trt_profile_max_shapes": ",".join(high)}


def gpu_providers(precision: str, trt: bool, gpu_id: int, max_batch_size: int, max_seq_len: int,
                  trt_cache_dir: str | None, manifest: Manifest | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The provider list for ``--device gpu``: TensorRT (optional) then CUDA, both on ``gpu_id``."""
    providers: list[tuple[str, dict[str, Any]]] = []
    if trt:
        trt_options: dict[str, Any] = {
            "device_id": gpu_id,
            "trt_fp16_enable": precision == "fp16",
            # One optimisation profile spanning every batch the server can send.
            **trt_profile(max_batch_size, max_seq_len, manifest),
        }
        if trt_cache_dir:
            os.makedirs(trt_cache_dir, exist_ok=True)
            trt_options.update(trt_engine_cache_enable=True, trt_engine_cache_path=trt_cache_dir)
        providers.append((TENSORRT, trt_options))
    providers.append((CUDA, {"device_id": gpu_id}))
    return providers


def create_session(model_path: Path, device: str = "cpu", precision: str = "fp32",
                   threads: int | None = None, trt: bool = False, gpu_id: int = 0,
                   max_batch_size: int = 32, max_seq_len: int = 512,
                   trt_cache_dir: str | None = None, manifest: Manifest | None = None) -> ort.InferenceSession:
    """Build an ``InferenceSession`` for ``model_path`` on ``device``; never falls back silently."""
    options = _session_options(threads)
    if device == "cpu":
        if trt:
            raise ProviderError("--trt needs --device gpu")
        providers: list[Any] = [CPU]
    elif device == "gpu":
        have = available_providers()
        wanted = [CUDA] + ([TENSORRT] if trt else [])
        missing = [p for p in wanted if p not in have]
        if missing:
            raise ProviderError(
                f"--device gpu needs {' and '.join(missing)}, but this onnxruntime build offers only "
                f"{have} (onnxruntime {ort.__version__}). Install deploy/requirements-gpu.txt "
                "(onnxruntime-gpu) instead of onnxruntime, with a matching CUDA/cuDNN and an NVIDIA "
                "driver, or run with --device cpu")
        if hasattr(ort, "preload_dlls"):
            try:  # load CUDA/cuDNN from nvidia-* pip packages when present; harmless otherwise
                with contextlib.redirect_stdout(sys.stderr):  # it prints misses to stdout: keep JSON output clean
                    ort.preload_dlls()
            except Exception as exc:  # noqa: BLE001  # pragma: no cover - depends on the GPU machine
                logger.debug("onnxruntime.preload_dlls failed: %s", exc)
        providers = gpu_providers(precision, trt, gpu_id, max_batch_size, max_seq_len, trt_cache_dir, manifest)
    else:
        raise ProviderError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")

    try:
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/... exceptions
        raise ProviderError(f"{model_path}: onnxruntime cannot load the model on {device}: {exc}") from None

    if device == "gpu":
        active = session.get_providers()
        lost = [p for p in wanted if p not in active]
        if lost:
            raise ProviderError(
                f"--device gpu: onnxruntime created the session without {' and '.join(lost)} "
                f"(active providers: {active}); it fell back to the CPU, usually because the CUDA, "
                "cuDNN or TensorRT libraries could not be loaded (check LD_LIBRARY_PATH, the CUDA "
                "major version onnxruntime-gpu was built for, and `nvidia-smi`)")
    logger.info("model %s on %s (providers %s)", model_path.name, device, session.get_providers())
    return session
