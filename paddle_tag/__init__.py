"""paddle_tag: Chinese content tagging with PaddlePaddle, from few or no labels to a deployed tagger."""
import contextlib
import io
import os

# Paddle's CPU kernels use one thread unless OMP_NUM_THREADS says otherwise (measured here: 2 threads
# make a training step 1.6x faster). An explicit OMP_NUM_THREADS from the user wins.
os.environ.setdefault("OMP_NUM_THREADS", str(min(os.cpu_count() or 1, 8)))
# Paddle then prints a data-parallel warning at import about that variable; it does not apply to us
# (paddle.distributed.launch sets its own per worker), so keep it off the user's terminal.
with contextlib.redirect_stderr(io.StringIO()):
    import paddle  # noqa: F401,E402

__version__ = "0.1.0"
