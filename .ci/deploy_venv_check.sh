#!/usr/bin/env bash
# deploy/ needs no Paddle: in a fresh venv holding only deploy/requirements-cpu.txt (+ pytest and onnx
# for the fixtures), paddle / paddlenlp / paddle_tag must NOT import, and tests/deploy must pass.
#   bash .ci/deploy_venv_check.sh            (DEPLOY_VENV=dir to choose the venv, PYTHON=python3.x)
#   DEPLOY_REQUIREMENTS=deploy/requirements-gpu.txt bash .ci/deploy_venv_check.sh
#       the same with onnxruntime-gpu: on a machine without CUDA its CUDA provider is *listed* but cannot
#       load, the case where ONNX Runtime falls back to CPU silently; --device gpu must still fail loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
start=$(date +%s)
py="${PYTHON:-python3}"
if [[ -n "${DEPLOY_VENV:-}" ]]; then
    venv="$DEPLOY_VENV"
else
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    venv="$scratch/deploy-venv"
fi
rm -rf "$venv"
echo "deploy venv check: $("$py" --version 2>&1), venv $venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "${DEPLOY_REQUIREMENTS:-deploy/requirements-cpu.txt}" -r deploy/requirements-test.txt
"$venv/bin/python" -m pip check --disable-pip-version-check

# Run the import probes outside the repo, so a paddle_tag/ folder in the cwd cannot satisfy them.
probe_dir="$(mktemp -d)"
for module in paddle paddlenlp paddle_tag; do
    if (cd "$probe_dir" && "$venv/bin/python" -c "import $module" >/dev/null 2>&1); then
        echo "deploy venv check: FAILED: '$module' is importable in the deploy venv" >&2
        exit 1
    fi
done
(cd "$probe_dir" && PYTHONPATH="$repo" "$venv/bin/python" -c "import deploy.serve, deploy.predict")
rmdir "$probe_dir"

# tests/conftest.py imports paddle_tag: stop conftest lookup at tests/deploy (--confcutdir) and read no
# ini file (-c /dev/null; setup.cfg's [tool:pytest] would add pythonpath=tests).
(cd tests/deploy && "$venv/bin/python" -m pytest -q -p no:cacheprovider -c /dev/null --rootdir=. \
    --confcutdir=. --import-mode=importlib .)
echo "deploy venv check: passed in $(( $(date +%s) - start )) s"
