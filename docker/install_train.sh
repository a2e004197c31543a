#!/usr/bin/env bash
# The install steps of docker/Dockerfile.train, also replayed by CI in a fresh virtualenv
# (.ci/docker_replay.sh) because images cannot be pulled on the build machines.
#   PADDLE_REQUIREMENT  the Paddle build to install ("" keeps the one the base image has)
#   PADDLE_INDEX        extra index for it (Paddle's own index for the GPU wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"
if [ -n "${PADDLE_REQUIREMENT:-}" ]; then
    "$python" -m pip install --no-cache-dir ${PADDLE_INDEX:+--extra-index-url "$PADDLE_INDEX"} "$PADDLE_REQUIREMENT"
fi
"$python" docker/pins.py --exclude paddlepaddle > /tmp/paddle_tag_pins.txt
"$python" -m pip install --no-cache-dir -r /tmp/paddle_tag_pins.txt
"$python" -m pip install --no-cache-dir --no-deps -e .
"$python" -c "import paddle, paddlenlp, paddle_tag; from paddleclas.ppcls.arch.backbone import ResNet18; print('paddle', paddle.__version__, 'cuda', paddle.device.is_compiled_with_cuda())"
