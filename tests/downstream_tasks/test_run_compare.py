"""Fine-tuning runs on a tiny BERT (MedNLI format, NCBI-disease) and their comparison."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from downstream_tasks import compare, data, run, scorer

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def test_mednli_run_results(mednli_runs) -> None:
    a, _ = mednli_runs
    r = json.loads((a / "mednli" / "results.json").read_text())
    assert r["task"] == "mednli" and r["metric"] == "accuracy" and r["name"] == "mednli"
    assert len(r["model"]["sha256"]) == 64 and r["model"]["path"].endswith("tiny_mednli")
    assert r["settings"]["preset"] == "robust" and r["settings"]["seeds"] == [1, 2]
    assert r["settings"]["do_lower_case"] is False and r["settings"]["max_length"] == 150
    assert [x["seed"] for x in r["runs"]] == [1, 2] and all(x["steps"] == 12 for x in r["runs"])
    scores = [x["test"]["accuracy"] for x in r["runs"]]
    assert r["test_mean"] == pytest.approx(np.mean(scores))
    assert r["test_sd"] == pytest.approx(np.std(scores, ddof=1))
    # the accuracy is the one of the predictions file
    rows = [line.split("\t") for line in (a / "mednli" / "predictions_test_seed2.tsv").read_text().splitlines()]
    assert len(rows) == 32 and r["runs"][1]["test"]["accuracy"] == pytest.approx(
        100 * np.mean([g == p for _, g, p in rows]))
    assert "steps/s" in (a / "mednli" / "log.txt").read_text()


def test_rerun_resumes_and_is_deterministic(mednli_runs, synthetic_dir: Path, mednli_model: Path,
                                            tmp_path: Path) -> None:
    a, _ = mednli_runs
    before = (a / "mednli" / "results.json").read_text()
    # a rerun of the same command does no training (units are cached) and writes the same results
    r = run.evaluate("mednli", synthetic_dir / "mednli", mednli_model, a / "mednli", seeds=[1, 2], max_steps=12)
    assert "fine-tuning" not in (a / "mednli" / "log.txt").read_text().split("robust preset")[-1]
    assert json.loads(before)["runs"] == r["runs"]
    # a fresh folder, one seed only: the same numbers for that seed (seeded, whatever else ran)
    fresh = run.evaluate("mednli", synthetic_dir / "mednli", mednli_model, tmp_path / "one", seeds=[2],
                         max_steps=12)
    assert fresh["runs"][0]["test"] == r["runs"][1]["test"]
    with pytest.raises(run.RunError, match=r"made with other settings \(max_steps: 12 -> 5\); use a new --output_dir"):
        run.evaluate("mednli", synthetic_dir / "mednli", mednli_model, tmp_path / "one", seeds=[2], max_steps=5)


def test_a_damaged_run_config_is_one_line_and_left_alone(synthetic_dir: Path, mednli_model: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "damaged"
    out.mkdir()
    (out / "run_config.json").write_text("{not json")
    with pytest.raises(run.RunError, match=r"run_config.json: unreadable \(.*\); use a new --output_dir") as info:
        run.evaluate("mednli", synthetic_dir / "mednli", mednli_model, out, seeds=[2], max_steps=5)
    assert "\n" not in str(info.value)
    assert (out / "run_config.json").read_text() == "{not json"
    assert not list((out / "units").iterdir())


def test_ncbi_disease_run(ncbi_dir: Path, cased_model: Path, tmp_path: Path) -> None:
    r = run.evaluate("ner", ncbi_dir, cased_model, tmp_path / "ncbi", seeds=[3], max_steps=4)
    assert r["metric"] == "f1" and r["name"] == ncbi_dir.name
    test = r["runs"][0]["test"]
    assert set(test) >= {"f1", "precision", "recall"} and test["sentences"] == 80
    gold, pred = data.read_predictions(tmp_path / "ncbi" / "predictions_test_seed3.tsv")
    expected = data.read_conll(ncbi_dir / "test.tsv")
    assert gold == [list(s.labels) for s in expected]  # every word of every sentence is there
    assert all(p in ("O", "B-Disease", "I-Disease") for sent in pred for p in sent)
    assert scorer.score(gold, pred)["f1"] == pytest.approx(test["f1"])


def test_long_sentence_is_scored_whole(cased_model: Path, tmp_path: Path) -> None:
    """A 400-word sentence (over two windows of 148 sub-tokens) gets a prediction per word."""
    words = [f"word{i % 7}" for i in range(400)]
    labels = ["B-Disease" if i % 50 == 0 else "O" for i in range(400)]
    for split in ("train", "dev", "test"):
        data.write_conll(tmp_path / f"{split}.tsv", [data.NerSentence(tuple(words), tuple(labels))])
    r = run.evaluate("ner", tmp_path, cased_model, tmp_path / "out", seeds=[1], max_steps=1)
    gold, pred = data.read_predictions(tmp_path / "out" / "predictions_test_seed1.tsv")
    assert len(pred[0]) == 400 and r["runs"][0]["test"]["entities_gold"] == 8


def test_run_cli_errors_are_one_line(synthetic_dir: Path, mednli_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "data"
    bad.mkdir()
    for name in data.MEDNLI_FILES.values():
        (bad / name).write_text((synthetic_dir / "mednli" / name).read_text())
    with open(bad / "mli_dev_v1.jsonl", "a") as f:
        f.write('{"pairID": "x", "sentence1": "a", "sentence2": "b", "gold_label": "unknown"}\n')
    cmd = [sys.executable, "-m", "downstream_tasks.run", "--task", "mednli", "--data_dir", str(bad),
           "--model", str(mednli_model), "--output_dir", str(tmp_path / "out")]
    r = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == (f"downstream_tasks.run: error: {bad / 'mli_dev_v1.jsonl'}: line 33: field "
                                "'gold_label' is 'unknown'; expected one of contradiction, entailment, neutral")
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked
    r = subprocess.run(cmd[:-2] + ["--output_dir", str(tmp_path / "o2"), "--seeds", "1,x"], cwd=REPO,
                       env=ENV, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().endswith("expected comma-separated integers, e.g. 1,2,3,4,5")
    r = subprocess.run([sys.executable, "-m", "downstream_tasks.run", "--help"], cwd=REPO, env=ENV,
                       capture_output=True, text=True)
    assert r.returncode == 0
    for flag in ("--task", "--data_dir", "--model", "--output_dir", "--preset", "--seeds", "--max_steps"):
        assert flag in r.stdout


def test_pickle_only_model_needs_flag(synthetic_dir: Path, mednli_model: Path, tmp_path: Path) -> None:
    pt = tmp_path / "pt"
    pt.mkdir()
    for f in ("config.json", "vocab.txt"):
        (pt / f).write_bytes((mednli_model / f).read_bytes())
    (pt / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(run.UserError, match="pass --allow_pickle_i_trust_this_code"):
        run.evaluate("mednli", synthetic_dir / "mednli", pt, tmp_path / "out", seeds=[1], max_steps=1)


# ----------------------------------------------------------------------------- compare

def test_compare_two_runs(mednli_runs, tmp_path: Path) -> None:
    a, b = mednli_runs
    report = compare.compare(a, b, tmp_path / "cmp", replicates=500)
    (row,) = report["tasks"]
    ra = json.loads((a / "mednli" / "results.json").read_text())
    rb = json.loads((b / "mednli" / "results.json").read_text())
    assert row["a"]["per_seed"] == pytest.approx([x["test"]["accuracy"] for x in ra["runs"]])
    assert row["difference"] == pytest.approx(ra["test_mean"] - rb["test_mean"])
    low, high = row["ci95"]
    assert low <= row["difference"] <= high and high - low > 0
    assert row["verdict"] == ("equivalent" if low > -1.0 else "not equivalent")
    assert row["published"]["Bio+Clinical BERT"] == 82.7
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| mednli | accuracy | 82.7 | 80.8 | 77.6 |" in md
    assert (tmp_path / "cmp" / "per_seed_scores.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["tasks"][0]["verdict"] == row["verdict"]
    same = compare.compare(a, a, replicates=200)["tasks"][0]  # a run against itself: exactly 0
    assert same["difference"] == 0 and same["ci95"] == [0.0, 0.0] and same["verdict"] == "equivalent"


def _fake_run(folder: Path, name: str, seeds_gold_pred: dict[int, tuple[list, list]]) -> Path:
    """A NER run folder with chosen predictions (to test the statistics, not the training)."""
    folder.mkdir(parents=True)
    runs = []
    for seed, (gold, pred) in seeds_gold_pred.items():
        sentences = [data.NerSentence(tuple(f"w{i}" for i in range(len(g))), tuple(g)) for g in gold]
        data.write_predictions(folder / f"predictions_test_seed{seed}.tsv", sentences, pred)
        runs.append({"seed": seed, "test": scorer.score(gold, pred)})
    (folder / "results.json").write_text(json.dumps({
        "name": name, "task": "ner", "metric": "f1", "model": {"path": str(folder)}, "runs": runs,
        "data": {"test": {"path": "t", "sha256": "same"}}}))
    return folder


def test_compare_verdicts_and_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gold = [["B-X", "I-X", "O", "B-Y"] for _ in range(400)]
    good = {s: (gold, [list(g) for g in gold]) for s in (1, 2, 3)}
    # B misses each entity with probability 10%: F1 ~ 94.7, clearly below A (100)
    worse = {s: (gold, [[lab if rng.random() > 0.1 else "O" for lab in g] for g in gold]) for s in (1, 2, 3)}
    a = _fake_run(tmp_path / "a" / "i2b2_2010", "i2b2_2010", good)
    b = _fake_run(tmp_path / "b" / "i2b2_2010", "i2b2_2010", worse)
    ab = compare.compare(tmp_path / "a", tmp_path / "b", replicates=400)["tasks"][0]
    ba = compare.compare(tmp_path / "b", tmp_path / "a", replicates=400)["tasks"][0]
    assert ab["a"]["per_seed"] == [100.0] * 3 and ab["published"]["BioBERT"] == 86.5
    assert ab["difference"] > 4 and ab["verdict"] == "equivalent"     # A better than B: fine
    assert ba["ci95"][1] < -2 and ba["verdict"] == "not equivalent"  # B worse beyond the margin
    # a generous margin makes the worse model equivalent; the margin is a flag
    assert compare.compare(tmp_path / "b", tmp_path / "a", margin_f1=20, replicates=400)["tasks"][0]["verdict"] \
        == "equivalent"
    # the bootstrap recomputes micro F1 from summed counts (not a mean of sentence F1s)
    counts = np.array([[scorer.sentence_counts(g, p) for g, p in zip(*worse[1])]])
    assert compare.metric_of(counts.sum(axis=1), "ner")[0] == pytest.approx(ab["b"]["per_seed"][0])


def test_compare_refuses_unpaired(tmp_path: Path) -> None:
    gold = [["B-X", "O"]]
    _fake_run(tmp_path / "a", "i2b2_2006", {1: (gold, gold)})
    _fake_run(tmp_path / "b", "i2b2_2006", {2: (gold, gold)})
    with pytest.raises(compare.CompareError, match="no seed in common"):
        compare.compare(tmp_path / "a", tmp_path / "b", replicates=100)
    r = subprocess.run([sys.executable, "-m", "downstream_tasks.compare", str(tmp_path / "a"),
                        str(tmp_path / "nope")], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == f"downstream_tasks.compare: error: {tmp_path / 'nope'}: not found"


def test_full_disk_is_one_line(synthetic_dir: Path, mednli_model: Path, tmp_path: Path, monkeypatch) -> None:
    import errno

    def full(path, obj) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    out = tmp_path / "out"
    run.evaluate("mednli", synthetic_dir / "mednli", mednli_model, out, seeds=[1], max_steps=1)
    (out / "results.json").unlink()
    monkeypatch.setattr(run, "write_json_atomic", full)
    with pytest.raises(run.RunError, match=rf"cannot write: {out / 'results.json'}: No space left on device"):
        run.evaluate("mednli", synthetic_dir / "mednli", mednli_model, out, seeds=[1], max_steps=1)
    assert not (out / "results.json").exists() and not list(out.glob(".*tmp-*"))


def test_paper_preset_picks_best_dev(synthetic_dir: Path, mednli_model: Path, tmp_path: Path) -> None:
    r = run.evaluate("mednli", synthetic_dir / "mednli", mednli_model, tmp_path / "paper", preset="paper",
                     max_steps=1)
    (only,) = r["runs"]
    assert only["seed"] == 1 and len(only["grid"]) == 18
    best = max(g["dev"] for g in only["grid"])
    assert only["dev"]["accuracy"] == best
    assert only["setting"] == next(g["setting"] for g in only["grid"] if g["dev"] == best)
    assert len(list((tmp_path / "paper" / "units").glob("*.json"))) == 18


def test_compare_refuses_other_settings(mednli_runs, synthetic_dir: Path, mednli_model: Path, tmp_path: Path) -> None:
    a, _ = mednli_runs
    run.evaluate("mednli", synthetic_dir / "mednli", mednli_model, tmp_path / "b" / "mednli", seeds=[1, 2],
                 max_steps=3)
    with pytest.raises(compare.CompareError, match=r"mednli: .* ran with different settings \(max_steps\)"):
        compare.compare(a, tmp_path / "b", replicates=100)
