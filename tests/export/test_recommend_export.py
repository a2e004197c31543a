"""Next-item checkpoints (tiny SASRec and GRU4Rec trained briefly on real MovieLens-100K) → recommender export →
deploy/: the ONNX user encoder reproduces Paddle's user vectors, deploy recommends what Paddle ranks first, the
export is atomic and refused when parity fails, and deploy refuses tampered files or another item set."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from helpers import DATA, REPO, run_tool, with_o

from paddle_tag.config import load_config
from paddle_tag.data.sequences import read_interactions
from paddle_tag.data.sources import prepare
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.tasks.next_item import left_pad, load_next_item
from paddle_tag.errors import ManifestError, ModelLoadError, ParityError
from paddle_tag.export import export_checkpoint, read_manifest
from paddle_tag.export.onnx_convert import session
from paddle_tag.export.recommend_manifest import ids_digest
from paddle_tag.export.recommend_parity import MIN_TOP10_AGREEMENT, require_recommender_fp32
from paddle_tag.utils.io import sha256_file

CONFIG = str(REPO / "configs/recommend/sasrec_ml1m.yaml")
ML100K = DATA / "movielens_100k"
MAX_LEN = 20
EXPECTED_FILES = {"user_encoder.onnx", "item_table.npy", "items.json", "popular.json", "manifest.json",
                  "paddle/model.json", "paddle/model.pdiparams"}


@pytest.fixture(scope="module")
def data():
    prepare("movielens_100k", DATA)
    return read_interactions(ML100K)


def train_tiny(name: str, out: Path) -> Path:
    """hidden 32, 1 layer, the last 20 items, one epoch (15 steps): barely trained, enough for parity."""
    overrides = [f"Global.output_dir={out}", f"Data.train_path={ML100K}", f"Data.max_seq_len={MAX_LEN}",
                 "Data.batch_size=64", "Model.hidden_size=32", "Model.num_layers=1", f"Model.name={name}",
                 "Global.epochs=1", "Global.progress=false", "Recommend.eval_users=100"]
    build_run(load_config(CONFIG, overrides)).fit()
    return out / "best"


def export_config(ckpt: Path, out: Path, *extra: str):
    return load_config(ckpt / "config.yaml", [f"Global.checkpoint={ckpt}", f"Export.output_dir={out}",
                                              "Global.progress=false", *extra])


@pytest.fixture(scope="module", params=["sasrec", "gru4rec"])
def exported(request, data, tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, export) of a tiny model."""
    root = tmp_path_factory.mktemp(request.param)
    ckpt = train_tiny(request.param, root / "run")
    return ckpt, export_checkpoint(export_config(ckpt, root / "export"))


def files_in(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def test_export_writes_the_recommender_contract(exported, data):
    ckpt, export = exported
    model = load_next_item(ckpt, data)
    assert files_in(export) == EXPECTED_FILES
    assert sorted(p.name for p in export.parent.iterdir()) == ["export", "run"]  # no temp or old copies
    manifest = read_manifest(export)  # validates keys, every sha256, items / table / popularity
    assert manifest["kind"] == "recommender" and manifest["model"] == model.model_config()
    assert manifest["inputs"] == [{"name": "history", "dtype": "int64", "shape": ["batch", MAX_LEN]}]
    assert manifest["outputs"] == [{"name": "user_vector", "dtype": "float32", "shape": ["batch", 32]}]
    assert list(manifest["models"]) == ["fp32"]  # FP32 only
    fp32 = manifest["parity"]["fp32"]
    assert fp32["split"] == "test" and fp32["users"] == len(data.leave_one_out("test")[2]) == 943
    assert fp32["max_abs_diff"] <= 1e-4 and fp32["top10_agreement"] >= MIN_TOP10_AGREEMENT
    items = json.loads((export / "items.json").read_text(encoding="utf-8"))
    assert items["ids"] == data.item_ids and items["titles"] == data.titles
    assert items["tags"][1] == [data.tag_names[t - 1] for t in data.item_tags[1] if t]
    assert manifest["items"]["ids_sha256"] == ids_digest(data.item_ids)
    with paddle.no_grad():
        np.testing.assert_array_equal(np.load(export / "item_table.npy"), model.item_table().numpy())
    popular = json.loads((export / "popular.json").read_text(encoding="utf-8"))
    counts = np.bincount(np.concatenate(data.sequences), minlength=len(data.item_ids))
    assert sorted(popular["order"]) == list(range(1, 1683)) and popular["counts"] == counts[popular["order"]].tolist()
    assert popular["counts"] == sorted(popular["counts"], reverse=True)


def test_onnx_user_vectors_match_paddle_for_any_batch(exported, data):
    ckpt, export = exported
    model = load_next_item(ckpt, data)
    sess = session(export / "user_encoder.onnx")
    _, histories, _ = data.leave_one_out("test")
    for size in (1, 5, 64):
        batch = left_pad(histories[100:100 + size], MAX_LEN)
        with paddle.no_grad():
            expected = model.last_state(paddle.to_tensor(batch)).numpy()
        got = sess.run(None, {"history": batch})[0]
        assert got.shape == (size, 32)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_deploy_recommends_what_paddle_ranks_first(exported, data):
    from deploy.recommender import Recommender

    ckpt, export = exported
    model = load_next_item(ckpt, data)
    recommender = Recommender(export, threads=1)
    _, histories, _ = data.leave_one_out("test")
    histories = histories[:60]
    with paddle.no_grad():
        scores = model.scores(paddle.to_tensor(left_pad(histories, MAX_LEN))).numpy().astype("float64")
    answers = recommender.predict([{"history": [data.item_ids[i] for i in h], "k": 10} for h in histories])
    for history, row, answer in zip(histories, scores, answers):
        row[history] = -np.inf  # seen items are never recommended
        best = np.argsort(-row, kind="stable")[:10]
        assert [item["id"] for item in answer["items"]] == [data.item_ids[i] for i in best]
        np.testing.assert_allclose([item["score"] for item in answer["items"]], row[best], atol=1e-3)
        assert answer["items"][0]["title"] == data.titles[best[0]] and answer["fallback"] is None


def test_failed_parity_leaves_the_previous_export_untouched(exported, tmp_path):
    ckpt, _ = exported
    out = tmp_path / "export"
    export_checkpoint(export_config(ckpt, out))
    before = {name: (out / name).read_bytes() for name in files_in(out)}
    with pytest.raises(ParityError, match=r"max \|user vector diff\| .* \(allowed 1e-12\).*nothing was written"):
        export_checkpoint(export_config(ckpt, out, "Export.fp32_atol=1e-12"))
    assert {name: (out / name).read_bytes() for name in files_in(out)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_the_tool_prints_the_parity_and_exits_2_when_it_fails(exported, tmp_path):
    ckpt, _ = exported
    args = with_o([f"Global.checkpoint={ckpt}", f"Export.output_dir={tmp_path / 'e'}"])
    proc = run_tool("export_model.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert "(1682 items, hidden 32, last 20 items): user encoder fp32" in line and "of 943 test users" in line
    proc = run_tool("export_model.py", *args, "-o", "Export.fp32_atol=1e-12")
    assert proc.returncode == 2
    assert "error: FP32 ONNX does not reproduce the Paddle user encoder on 943 test users" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_log_with_another_item_set_is_refused(exported, tmp_path):
    ckpt, _ = exported
    log = tmp_path / "other_log"
    log.mkdir()
    (log / "items.jsonl").write_text("".join(json.dumps({"id": f"x{i}"}) + "\n" for i in range(5)), encoding="utf-8")
    (log / "sequences.jsonl").write_text(json.dumps({"user": "u", "items": ["x1", "x2", "x3"]}) + "\n",
                                         encoding="utf-8")
    with pytest.raises(ModelLoadError, match="trained on 1682 items that are not the 5 items"):
        export_checkpoint(export_config(ckpt, tmp_path / "e", f"Data.train_path={log}"))
    assert not (tmp_path / "e").exists()


def _rehash(export: Path) -> None:
    manifest = json.loads((export / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"] = {name: sha256_file(export / name) for name in manifest["files"]}
    (export / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_deploy_refuses_a_tampered_file_and_another_item_set(exported, tmp_path):
    from deploy.export_dir import ManifestError as DeployManifestError
    from deploy.recommender import Recommender

    _, export = exported
    tampered = tmp_path / "tampered"
    shutil.copytree(export, tampered)
    table = np.load(tampered / "item_table.npy")
    table[5, 0] += 1.0
    np.save(tampered / "item_table.npy", table, allow_pickle=False)
    with pytest.raises(DeployManifestError, match="item_table.npy: sha256 mismatch"):
        Recommender(tampered)
    with pytest.raises(ManifestError, match="item_table.npy has changed"):
        read_manifest(tampered)

    swapped = tmp_path / "swapped"
    shutil.copytree(export, swapped)
    items = json.loads((swapped / "items.json").read_text(encoding="utf-8"))
    items["ids"][1], items["ids"][2] = items["ids"][2], items["ids"][1]  # a consistent file of another item order
    (swapped / "items.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    _rehash(swapped)
    with pytest.raises(DeployManifestError, match="not the 1682 items the model was exported with"):
        Recommender(swapped)
    with pytest.raises(ManifestError, match="not the item set the model was exported with"):
        read_manifest(swapped)


def test_ids_digest_is_the_same_in_paddle_tag_and_deploy():
    from deploy.recommender import ids_digest as deploy_digest

    ids = ["<pad>", "1193", "电影/三体", "a\"b", "emoji 😀", ""]
    assert ids_digest(ids) == deploy_digest(ids) and ids_digest(ids) != ids_digest(ids[::-1])


def test_top10_agreement_below_the_floor_is_refused():
    figures = {"users": 100, "max_abs_diff": 1e-7, "top10_agreement": 0.98, "top10_identical": False}
    with pytest.raises(ParityError, match="same top-10 items for 98.00 % of the users"):
        require_recommender_fp32(figures, 1e-4)
    require_recommender_fp32({**figures, "top10_agreement": 0.995}, 1e-4)
