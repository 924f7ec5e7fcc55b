"""The run folder's bookkeeping, with the stage commands replaced by fakes (fast): stale
inputs redo their step and every step after it, num_train_steps can be raised (not
lowered below the trained step), a killed run's temporaries are removed."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from recipe import runner, steps
from recipe.run_folder import Run
from recipe.__main__ import main
from recipe.config import RecipeError

HEADER = "ROW_ID,SUBJECT_ID,HADM_ID,CHARTDATE,CHARTTIME,STORETIME,CATEGORY,DESCRIPTION,CGID,ISERROR,TEXT\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICALBERT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def fake_stages(monkeypatch):
    """Every step replaced by a fake that records its call and writes a small output."""
    calls: list[str] = []

    def fake(name):
        def step(run):
            calls.append(name)
            if name == "sections":
                run.text_dir.mkdir(parents=True, exist_ok=True)
                (run.text_dir / "radiology-00000.txt").write_text(Path(run.cfg["notes"]).read_bytes().hex()[:20])
                return {"outputs": [str(run.text_dir / "radiology-00000.txt")]}
            if name == "pretrain":
                run.model_dir.mkdir(parents=True, exist_ok=True)
                step_n = run.cfg["num_train_steps"]
                (run.model_dir / f"model.ckpt-{step_n}.index").write_text("")
                (run.model_dir / "checkpoint").write_text(f'model_checkpoint_path: "model.ckpt-{step_n}"\n')
                return {"outputs": [str(run.model_dir / "checkpoint")]}
            return None
        return step

    monkeypatch.setattr(runner, "STEPS", {name: fake(name) for name in steps.STEPS})
    return calls


def write_notes(path: Path, n: int) -> Path:
    with gzip.open(path, "wt") as f:
        f.write(HEADER + "".join(f'{i},1,2,,,,Radiology,R,,,"No acute findings."\n' for i in range(n)))
    return path


@pytest.fixture
def args(tmp_path):
    notes = write_notes(tmp_path / "NOTEEVENTS.csv.gz", 3)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nno\n")
    return ["--notes", str(notes), "--init", "scratch", "--vocab", str(vocab), "--run_dir", str(tmp_path / "run"),
            "--num_train_steps", "10", "--num_warmup_steps", "1", "--num_workers", "1"]


ALL = ["notes", "sections", "vocab", "tfrecords", "pretrain", "export", "compare", "evaluate", "summary"]


def test_a_finished_run_is_skipped_and_a_touched_input_too(tmp_path, args, fake_stages, capsys):
    assert main(args) == 0
    assert fake_stages == ALL
    marker = json.loads((tmp_path / "run" / ".steps" / "sections.json").read_text())
    text = tmp_path / "run" / "text" / "radiology-00000.txt"
    assert marker["status"] == "done" and marker["kind"] == "recipe.sections" and marker["version"] == 2
    assert marker["outputs"] == [{"path": "text/radiology-00000.txt", "size": text.stat().st_size,
                                  "sha256": hashlib.sha256(text.read_bytes()).hexdigest()}]
    assert marker["inputs"]["notes"][0]["path"] == str(tmp_path / "NOTEEVENTS.csv.gz")
    assert len(marker["inputs"]["notes"][0]["sha256"]) == 64
    fake_stages.clear()
    import os
    os.utime(tmp_path / "NOTEEVENTS.csv.gz")  # same bytes, new mtime: not a change
    assert main(args) == 0
    assert fake_stages == ["summary"]


def test_a_changed_notes_file_redoes_sections_and_everything_after(tmp_path, args, fake_stages, capsys):
    assert main(args) == 0
    (tmp_path / "run" / "text" / "stale-00000.txt").write_text("from the old notes")
    capsys.readouterr()
    fake_stages.clear()
    write_notes(tmp_path / "NOTEEVENTS.csv.gz", 5)  # new content at the same path
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "input changed since step sections ran (notes: " in err and "-> " in err
    assert "redoing sections and every step after it" in err and "removed text/" in err
    assert fake_stages == ALL[1:]  # notes (demo only) still done; sections onwards redone
    assert not (tmp_path / "run" / "text" / "stale-00000.txt").exists()


def test_a_killed_step_with_changed_input_loses_its_partial_work(tmp_path, args, fake_stages, monkeypatch):
    def killed(run):
        run.text_dir.mkdir(parents=True)
        (run.text_dir / "partial-00000.txt").write_text("half")
        raise KeyboardInterrupt
    monkeypatch.setitem(runner.STEPS, "sections", killed)
    with pytest.raises(KeyboardInterrupt):
        main(args)
    assert json.loads((tmp_path / "run" / ".steps" / "sections.json").read_text())["status"] == "started"
    monkeypatch.undo()
    monkeypatch.setenv("CLINICALBERT_CACHE_DIR", str(tmp_path / "cache"))
    write_notes(tmp_path / "NOTEEVENTS.csv.gz", 7)
    monkeypatch.setattr(runner, "STEPS", dict(runner.STEPS, sections=lambda run: {"outputs": []}))
    assert main(args + ["--steps", "notes,sections"]) == 0
    assert not (tmp_path / "run" / "text").exists()


def test_raising_num_train_steps_continues_lowering_below_the_trained_step_is_refused(
        tmp_path, args, fake_stages, capsys):
    assert main(args) == 0
    fake_stages.clear()
    capsys.readouterr()
    longer = args + ["--num_train_steps", "25"]
    assert main(longer) == 0
    assert fake_stages == ["pretrain", "export", "compare", "evaluate", "summary"]
    err = capsys.readouterr().err
    assert "num_train_steps 10 -> 25: pretraining continues from step 10" in err
    assert "learning-rate schedule is now the one of 25 steps" in err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["num_train_steps"] == 25
    with pytest.raises(RecipeError, match=r"--num_train_steps 20 is below the step already trained .* \(25\)"):
        main(args + ["--num_train_steps", "20"])
    with pytest.raises(RecipeError, match=r"other settings \(learning_rate: 5e-05 -> 0.001\)"):
        main(longer + ["--learning_rate", "0.001"])


def test_a_reruns_removes_the_temporaries_a_killed_run_left_and_says_so(tmp_path, args, fake_stages, capsys):
    run_dir = tmp_path / "run"
    assert main(args + ["--steps", "notes"]) == 0
    for name in ("text/.radiology-00000.txt.tmp-abc123", "pretrain/model.ckpt-5.index.tempstate77",
                 ".huggingface.tmp-zz/config.json", "text/radiology-keep.txt"):
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text("x")
    capsys.readouterr()
    assert main(args + ["--steps", "notes"]) == 0
    err = capsys.readouterr().err
    assert "removed 3 temporary file(s) a killed run left: .huggingface.tmp-zz, " in err
    assert sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()
                  and ".steps" not in p.parts) == [".lock", "config.json", "text/radiology-keep.txt"]


def test_a_second_command_on_a_locked_folder_is_refused_with_the_pid(tmp_path, args, fake_stages):
    from utils.runlock import FolderBusy, FolderLock
    (tmp_path / "run").mkdir()
    with FolderLock(tmp_path / "run"):
        with pytest.raises(FolderBusy, match=r"run is in use by another run \(pid \d+\)"):
            main(args)
    assert fake_stages == [] and not (tmp_path / "run" / "config.json").exists()


def test_a_folder_of_other_files_is_not_taken_as_a_run_folder(tmp_path, args, fake_stages):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("mine")
    with pytest.raises(RecipeError, match=r"not empty and not a run folder \(no config.json; holds thesis.tex\)"):
        main(args)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["thesis.tex"]


def test_evaluate_runs_each_task_for_ours_and_the_reference_then_compares(tmp_path, monkeypatch):
    data = tmp_path / "eval"
    for task, files in (("mednli", ("mli_train_v1.jsonl", "mli_dev_v1.jsonl", "mli_test_v1.jsonl")),
                        ("i2b2_2010", ("train.tsv", "dev.tsv", "test.tsv"))):
        (data / task).mkdir(parents=True)
        for f in files:
            (data / task / f).write_text("x\n")
    reference = tmp_path / "Bio_ClinicalBERT"
    reference.mkdir()
    (reference / "config.json").write_text("{}")
    calls = []
    monkeypatch.setattr(steps, "run_command", lambda run, args: calls.append(args))
    run = Run(tmp_path / "run", {"eval_data": str(data), "reference": str(reference)})
    record = steps.step_evaluate(run)
    out = tmp_path / "run" / "evaluate"
    assert calls == [
        ["downstream_tasks.run", "--task", "ner", "--data_dir", str(data / "i2b2_2010"),
         "--model", str(tmp_path / "run" / "huggingface"), "--output_dir", str(out / "i2b2_2010" / "ours")],
        ["downstream_tasks.run", "--task", "ner", "--data_dir", str(data / "i2b2_2010"),
         "--model", str(reference), "--output_dir", str(out / "i2b2_2010" / "reference")],
        ["downstream_tasks.compare", str(out / "i2b2_2010" / "ours"), str(out / "i2b2_2010" / "reference"),
         "--output_dir", str(out / "i2b2_2010" / "compare")],
        ["downstream_tasks.run", "--task", "mednli", "--data_dir", str(data / "mednli"),
         "--model", str(tmp_path / "run" / "huggingface"), "--output_dir", str(out / "mednli" / "ours")],
        ["downstream_tasks.run", "--task", "mednli", "--data_dir", str(data / "mednli"),
         "--model", str(reference), "--output_dir", str(out / "mednli" / "reference")],
        ["downstream_tasks.compare", str(out / "mednli" / "ours"), str(out / "mednli" / "reference"),
         "--output_dir", str(out / "mednli" / "compare")],
    ]
    assert len(record["outputs"]) == 6


def test_pass_through_flags_reach_the_stages_only_when_set(tmp_path, monkeypatch):
    from recipe.config import effective_config
    from recipe.settings import build_parser
    calls = []
    monkeypatch.setattr(steps, "run_command", lambda run, args: calls.append(args))
    cfg = effective_config(build_parser().parse_args(["--demo"]))
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "ecg-00000.txt").write_text("Sinus rhythm.\n")
    run = Run(tmp_path, cfg)
    steps.step_sections(run), steps.step_tfrecords(run), steps.step_pretrain(run)
    assert not any(a.startswith(("--scheduler", "--dask_workers", "--num_devices", "--worker_hosts",
                                 "--task_index", "--iterations_per_loop", "--note_time_budget"))
                   for c in calls for a in c)
    calls.clear()
    cfg = effective_config(build_parser().parse_args(
        ["--demo", "--dask_workers", "3", "--num_devices", "2", "--worker_hosts", "a:1,b:2", "--task_index", "1",
         "--iterations_per_loop", "50", "--note_time_budget", "60"]))
    run = Run(tmp_path, cfg)
    steps.step_sections(run), steps.step_tfrecords(run), steps.step_pretrain(run)
    assert calls[0][-2:] == ["--dask_workers=3", "--note_time_budget=60.0"] and calls[1][-1:] == ["--dask_workers=3"]
    assert calls[2][-4:] == ["--num_devices=2", "--worker_hosts=a:1,b:2", "--task_index=1", "--iterations_per_loop=50"]


def test_leaving_out_the_reference_keeps_the_comparison_a_new_one_redoes_it(tmp_path, args, fake_stages,
                                                                            monkeypatch):
    import recipe.__main__ as entry
    monkeypatch.setattr(entry, "validate", lambda cfg: None)  # the fake reference is not a model
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "config.json").write_text("{}")
    upto_compare = ["--steps", "notes,sections,vocab,tfrecords,pretrain,export,compare"]
    assert main(args + upto_compare + ["--reference", str(ref)]) == 0
    fake_stages.clear()
    assert main(args + upto_compare) == 0  # no --reference this time: nothing is redone
    assert fake_stages == []
    (ref / "config.json").write_text('{"other": 1}')
    assert main(args + upto_compare + ["--reference", str(ref)]) == 0
    assert fake_stages == ["compare"]


def test_a_full_disk_while_writing_bookkeeping_is_one_line(tmp_path, args, fake_stages, monkeypatch):
    import errno

    import utils.resume_record

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as m:
        m.setattr(utils.resume_record, "write_json_atomic", full)  # what write_record writes config.json with
        with pytest.raises(RecipeError, match=r"cannot write the run's config: .*/run/config.json: No space left"):
            main(args)
    monkeypatch.setattr(runner, "write_record", full)
    with pytest.raises(RecipeError, match=r"cannot write the marker of step notes: .*notes.json: No space left"):
        main(args)


def test_a_run_folder_of_an_older_version_is_refused_untouched(tmp_path, args, fake_stages):
    """config.json and step markers of the previous format (no version) are refused with
    one line naming the file, before any step runs or any file of the folder changes."""
    from utils.resume_record import OldRecordError

    assert main(args) == 0
    run_dir = tmp_path / "run"

    def snapshot():
        return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    marker = run_dir / ".steps" / "sections.json"
    record = json.loads(marker.read_text())
    marker.write_text(json.dumps({"step": "sections", "inputs": record["inputs"], "settings": {},
                                  "status": "done", "outputs": ["text/radiology-00000.txt"]}))
    fake_stages.clear()
    before = snapshot()
    with pytest.raises(OldRecordError, match=r"^\S+/run/\.steps/sections\.json: written by an older version of "
                                             r"this project \(unversioned format; this one reads format 2\); "
                                             r"use a new --run_dir, or finish that run with the version"):
        main(args)
    assert fake_stages == [] and snapshot() == before

    config = json.loads((run_dir / "config.json").read_text())
    assert (config.pop("kind"), config.pop("version")) == ("recipe.config", 2)
    (run_dir / "config.json").write_text(json.dumps(config))
    before = snapshot()
    with pytest.raises(OldRecordError, match=r"/run/config\.json: written by an older version of this project"):
        main(args)
    assert fake_stages == [] and snapshot() == before
