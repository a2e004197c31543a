"""Device and AMP selection fail loudly instead of silently falling back."""
from __future__ import annotations

import subprocess
import sys

import paddle
import pytest

from paddle_tag.config import load_config
from paddle_tag.engine.runtime import setup_runtime
from paddle_tag.errors import ConfigError


def test_cpu_runtime_is_single_process_main_rank():
    runtime = setup_runtime(load_config(None, ["Global.device=cpu"]).Global)
    assert (runtime.device, runtime.rank, runtime.world_size, runtime.is_main) == ("cpu", 0, 1, True)
    assert runtime.grad_scaler() is None
    with runtime.autocast():  # a no-op context without AMP
        assert paddle.ones([2]).dtype == paddle.float32


@pytest.mark.skipif(paddle.device.is_compiled_with_cuda(), reason="checks the CPU-only build's error")
def test_gpu_on_a_cpu_only_build_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA"):
        setup_runtime(load_config(None, ["Global.device=gpu"]).Global)


def test_amp_on_cpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="Global.amp=O1 needs Global.device=gpu"):
        setup_runtime(load_config(None, ["Global.amp=O1"]).Global)


def test_float16_amp_gets_a_loss_scaler_bfloat16_does_not():
    from paddle_tag.engine.runtime import Runtime

    assert Runtime("gpu:0", amp_level="O1", amp_dtype="float16").grad_scaler() is not None
    assert Runtime("gpu:0", amp_level="O1", amp_dtype="bfloat16").grad_scaler() is None


def test_setup_runtime_flushes_denormals_in_cpu_math():
    """A float32 denormal (1e-39) survives Paddle's CPU math until setup_runtime, then counts as zero; in a fresh
    process, as the switch stays on for the life of one."""
    script = """
import paddle
from paddle_tag.config.schema import GlobalConfig
from paddle_tag.engine.runtime import setup_runtime
from paddle_tag.utils.denormals import flush_denormals
x = paddle.full([8], 1e-39, dtype="float32")
before = float((x * 1.0).sum())
setup_runtime(GlobalConfig())
after = float((x * 1.0).sum())
import numpy as np
print(before, after, flush_denormals(), np.finfo(np.float64).smallest_subnormal.tobytes() != bytes(8))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after, switched, numpy_limits_kept = proc.stdout.split()
    assert float(before) == pytest.approx(8e-39, rel=1e-3)
    assert float(after) == 0.0 and switched == "True"
    assert numpy_limits_kept == "True" and "subnormal" not in proc.stderr  # numpy's limits probed before the switch
