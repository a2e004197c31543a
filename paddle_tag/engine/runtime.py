"""Device, distributed and mixed-precision setup, checked up front with clear errors."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from dataclasses import dataclass

import numpy as np
import paddle

from paddle_tag.config.schema import GlobalConfig
from paddle_tag.errors import ConfigError


@dataclass
class Runtime:
    """Where this process runs: device, rank among data-parallel workers, AMP settings."""

    device: str
    rank: int = 0
    world_size: int = 1
    amp_level: str | None = None
    amp_dtype: str = "float16"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """Mixed-precision context for the forward pass (a no-op without ``Global.amp``)."""
        if not self.amp_level:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, level=self.amp_level, dtype=self.amp_dtype)

    def grad_scaler(self):
        """A loss scaler for float16 AMP (bfloat16 has float32's range and needs none)."""
        if self.amp_level and self.amp_dtype == "float16":
            return paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15)
        return None


@functools.lru_cache(maxsize=None)
def flush_denormals() -> bool:
    """Treat float32 denormals (|x| < 1.2e-38) as zero on this thread's CPU math, and on threads it starts later.

    Paddle's CPU kernels do not, and denormals are ~100x slower to compute with: a SimCSE run whose
    loss had fallen to 0.001 went from 3.3 to 15 s a step. TensorFlow and ``torch.set_flush_denormal`` do the
    same. Paddle has the switch (``ScopedFlushDenormal``, used by its inference predictor) but no Python API,
    so its constructor is called through ctypes, never destroyed; False where the library lacks it.
    """
    library = os.path.join(os.path.dirname(paddle.__file__), "base", "libpaddle.so")
    try:
        switch = ctypes.CDLL(library)._ZN6paddle8platform19ScopedFlushDenormalC1Ev
    except (OSError, AttributeError):
        return False
    for dtype in (np.float16, np.float32, np.float64):
        np.finfo(dtype)  # numpy caches these; probed after the switch they warn "smallest subnormal is zero"
    saved_state = ctypes.create_string_buffer(16)  # the object's two bools: the modes before the switch
    switch(saved_state)
    return True


def setup_runtime(cfg: GlobalConfig) -> Runtime:
    """Select the device, join the data-parallel group when launched by ``paddle.distributed.launch``;
    CPU math flushes denormals (:func:`flush_denormals`)."""
    flush_denormals()
    if cfg.device == "gpu":
        if not paddle.device.is_compiled_with_cuda():
            raise ConfigError("Global.device=gpu, but this Paddle build has no CUDA: install the GPU build "
                              "(the official Paddle docker image, see README) or set Global.device=cpu")
        if paddle.device.cuda.device_count() == 0:
            raise ConfigError("Global.device=gpu, but no GPU is visible (check CUDA_VISIBLE_DEVICES / drivers)")
    if cfg.amp and cfg.device != "gpu":
        raise ConfigError(f"Global.amp={cfg.amp} needs Global.device=gpu (mixed precision is a GPU feature here); "
                          "set Global.amp=null on CPU")
    world_size = paddle.distributed.get_world_size()
    if world_size > 1:
        paddle.distributed.init_parallel_env()
    rank = paddle.distributed.get_rank()
    device = f"gpu:{paddle.distributed.ParallelEnv().device_id}" if cfg.device == "gpu" else "cpu"
    paddle.set_device(device)
    return Runtime(device, rank, world_size, cfg.amp, cfg.amp_dtype)
