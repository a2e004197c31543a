#!/usr/bin/env bash
# BERTopic's own virtual environment for benchmarks/discover_vs_bertopic.py (issue 7), kept apart from
# paddle_tag's .venv so neither pins the other's numpy / scikit-learn.
#
#     bash benchmarks/bertopic_env.sh            # creates .venv-bertopic (idempotent; rerun after editing pins)
#     PYTHON=python3.11 VENV=/tmp/bt bash benchmarks/bertopic_env.sh
#
# `pip install bertopic` would pull sentence-transformers and with it torch (~800 MB of wheels and more
# installed), none of which the embeddings-given path needs: BERTopic 0.17 imports sentence_transformers only
# when it has to embed texts itself, and plotly only for its plots (it checks with find_spec). So bertopic is
# installed with --no-deps, next to exactly what `BERTopic(...).fit_transform(docs, embeddings=...)` with its
# default UMAP + hdbscan models imports, pinned to the versions resolved from the registry on 2026-11-30
# (Python 3.11). pandas stays on 2.x, the series BERTopic 0.17.4 was released against. The last step checks
# that BERTopic imports and that torch / sentence-transformers are absent.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-bertopic}
STAMP="$VENV/.installed-v1"   # bump together with the pins below

PINS=(
  umap-learn==0.5.12 hdbscan==0.8.44 jieba==0.42.1
  numpy==2.4.6 scipy==1.17.1 scikit-learn==1.9.1 pandas==2.3.3
  numba==0.68.1 llvmlite==0.50.0 pynndescent==0.7.0
  PyYAML==6.0.4 tqdm==4.70.1 packaging==26.4 joblib==1.6.0 threadpoolctl==3.8.0
)

if [[ -f "$STAMP" ]]; then
  echo "$VENV is ready (delete $STAMP to reinstall)"
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps bertopic==0.17.4
"$VENV/bin/python" - <<'EOF'
import importlib.util, sys
from bertopic import BERTopic  # noqa: F401  (fails here if a needed dependency is missing)
import hdbscan, jieba, umap  # noqa: F401,E401
heavy = [m for m in ("torch", "sentence_transformers") if importlib.util.find_spec(m)]
if heavy:
    sys.exit(f"unexpected in the BERTopic venv: {heavy}")
from importlib.metadata import version
print("BERTopic venv:", ", ".join(f"{p} {version(p)}" for p in
                                  ("bertopic", "umap-learn", "hdbscan", "numpy", "scikit-learn", "jieba")),
      "(no torch)")
EOF
touch "$STAMP"
