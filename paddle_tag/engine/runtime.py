"""Device, distributed and mixed-precision setup, checked up front with clear errors."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import paddle

from paddle_tag.config.schema import GlobalConfig
from paddle_tag.errors import ConfigError
from paddle_tag.utils.denormals import flush_denormals


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


def setup_runtime(cfg: GlobalConfig) -> Runtime:
    """Select the device, join the data-parallel group when launched by ``paddle.distributed.launch``;
    CPU math flushes denormals (:func:`flush_denormals`)."""
    flush_denormals()
    if cfg.device == "gpu":
        if not paddle.device.is_compiled_with_cuda():
            raise ConfigError("Global.device=gpu, but this Paddle build has no CUDA: install the GPU build (the "
                              "official Paddle docker image, see docs/stages/docker_gpu.md) or set Global.device=cpu")
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
