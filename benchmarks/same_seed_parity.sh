#!/usr/bin/env bash
# Same seed, same numbers? Runs six short trainings through tools/train.py (text multi-class, text multi-label
# with the wide part, SimCSE, SimCLR, MoCo v2, image tagging from the SimCLR backbone) with the code of git
# revision A and with the working tree, then compares every metric, the training history and the weights of
# best/ and last/ bit for bit (benchmarks/same_seed_compare.py). For refactorings that must not change results.
#   bash benchmarks/same_seed_parity.sh <revision A> [output folder]      (~2.5 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: same_seed_parity.sh <git revision> [output folder]}
root=${2:-$(mktemp -d)}
python=${PYTHON:-$PWD/.venv/bin/python}
git worktree add --force --detach "$root/code_a" "$rev" >/dev/null
ln -sfn "$PWD/data" "$root/code_a/data"
trap 'git worktree remove --force "$root/code_a"' EXIT

runs() {  # $1: code folder, $2: output folder
  local code=$1 out=$2 v=data/vocab/chinese_bert/vocab.txt
  mkdir -p "$out"
  (cd "$code" && export PYTHONPATH="$code" && "$python" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def rows(path, n): return [json.loads(line) for line in open(path, encoding="utf-8")][:n]
def write(name, items): open(f"{out}/{name}", "w", encoding="utf-8").write(
    "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items))
titles = rows("data/thucnews/train.jsonl", 400)
write("t_train.jsonl", titles); write("t_dev.jsonl", rows("data/thucnews/dev.jsonl", 100))
write("t_unlabeled.jsonl", [{"text": r["text"]} for r in titles])
poems = rows("data/poetry/train.jsonl", 400); seen = {t for r in poems for t in r["labels"]}
write("p_train.jsonl", poems)
write("p_dev.jsonl", [r for r in rows("data/poetry/dev.jsonl", 10**9) if set(r["labels"]) <= seen][:100])
PY
  local tiny=(-o Model.num_layers=2 -o Model.hidden_size=32 -o Model.num_heads=2 -o Model.intermediate_size=64
              -o Model.max_position=64 -o Model.vocab_file=$v -o Global.progress=false -o Data.max_seq_len=48
              -o Data.batch_size=16 -o Optimizer.warmup_ratio=0.05)
  local images=(-o Model.name=pplcnet_x0_25 -o Data.batch_size=16 -o Data.eval_batch_size=100 -o Global.max_steps=8
                -o Global.eval_every=4 -o Global.log_every=1 -o Global.progress=false)
  "$python" tools/train.py -c configs/text/thucnews_ernie_small.yaml "${tiny[@]}" -o Optimizer.lr=3e-3 \
    -o Data.train_path=$out/t_train.jsonl -o Data.eval_path=$out/t_dev.jsonl -o Data.test_path=null \
    -o Global.max_steps=30 -o Global.eval_every=10 -o Global.output_dir=$out/tag_mc > $out/tag_mc.log 2>&1
  "$python" tools/train.py -c configs/text/poetry_ernie_small.yaml "${tiny[@]}" -o Optimizer.lr=3e-3 \
    -o Data.train_path=$out/p_train.jsonl -o Data.eval_path=$out/p_dev.jsonl -o Data.test_path=null \
    -o Data.task=multi_label -o Model.wide=true -o Model.wide_buckets=4096 -o Optimizer.wide_lr=1.0 \
    -o Global.max_steps=30 -o Global.eval_every=10 -o Global.output_dir=$out/tag_ml > $out/tag_ml.log 2>&1
  "$python" tools/train.py -c configs/pretrain/simcse_ernie_small.yaml "${tiny[@]}" -o Model.pooling=mean \
    -o Optimizer.lr=1e-3 -o Data.train_path=$out/t_unlabeled.jsonl -o Pretrain.knn_train_path=$out/t_train.jsonl \
    -o Pretrain.knn_eval_path=$out/t_dev.jsonl -o Global.epochs=1 -o Global.eval_every=5 -o Global.log_every=1 \
    -o Global.output_dir=$out/simcse > $out/simcse.log 2>&1
  for method in simclr moco; do
    "$python" tools/train.py -c configs/image/${method}_resnet18_fashion.yaml "${images[@]}" \
      -o Pretrain.knn_max_items=120 -o Pretrain.queue_size=32 -o Pretrain.bn_splits=2 \
      -o Global.output_dir=$out/$method > $out/$method.log 2>&1
  done
  "$python" tools/train.py -c configs/image/mosaic_resnet18.yaml "${images[@]}" -o Model.pretrained=$out/simclr/best \
    -o Data.test_path=null -o Global.output_dir=$out/img_tag > $out/img_tag.log 2>&1)
}

echo "runs of $rev -> $root/a"; runs "$root/code_a" "$root/a"
echo "runs of the working tree -> $root/b"; runs "$PWD" "$root/b"
"$python" benchmarks/same_seed_compare.py "$root/a" "$root/b"
