"""The whole pinned stack, PaddleClas included, imports together in one process (pip check cannot see the
numpy/pyarrow/paddlenlp clash)."""
from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    out = {}
    for line in parser["options"]["install_requires"].strip().splitlines():
        if "==" in line:
            name, version = line.strip().split("==")
            out[name] = version
    return out


def test_stack_imports_in_a_fresh_interpreter_at_the_pinned_versions():
    code = ("import importlib.metadata as m, json, paddle, paddlenlp, pyarrow, numpy, datasets, huggingface_hub;"
            "from paddlenlp.transformers import ErnieModel, ErnieTokenizer;"
            "import onnx, onnxruntime, paddle2onnx, tokenizers;"
            "from onnxruntime.quantization import quantize_dynamic;"
            "from onnxconverter_common import float16;"
            "import cv2, paddleclas;"
            "from paddleclas.ppcls.arch.backbone import ResNet18, MobileNetV3_small_x0_35, PPLCNet_x0_25;"
            "import paddle_tag.models.backbones, paddle_tag.data.augment.image;"
            "import faiss, sklearn.cluster, sqlalchemy, jieba, paddle_tag.discover.pipeline, paddle_tag.discover.store;"
            "import umap, psycopg;"  # the test extra's (UMAP reduce, PostgreSQL store): numba must accept our numpy
            "print(json.dumps({n: m.version(n) for n in %r}))" % sorted(pins()))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    installed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert installed == pins()
