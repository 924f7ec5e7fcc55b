"""Every step's command line, built by the real steps from the settings table, parses with
its stage's own parser (argparse, or absl flags in a fresh FlagValues), and the table's
values arrive there: a renamed or retyped stage flag fails here, not days into a run."""
from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any

import pytest
from absl import flags

from recipe import settings, steps
from recipe.config import effective_config
from recipe.settings import build_parser
from recipe.run_folder import Run

MEDNLI_FILES = ("mli_train_v1.jsonl", "mli_dev_v1.jsonl", "mli_test_v1.jsonl")

# The presets, each with pass-through options set, so that the flags only passed when
# given are parsed too (section_split refuses --scheduler with --dask_workers: one each).
CASES = {
    "demo": ["--demo", "--use_amp", "true", "--amp_dtype", "float16", "--log_every_n_steps", "7",
             "--fix_known_bugs", "true", "--shard_notes", "4", "--note_time_budget", "5",
             "--scheduler", "tcp://10.0.0.1:8786", "--eval_preset", "paper", "--eval_seeds", "1,2",
             "--eval_max_steps", "3"],
    "paper": ["--notes", "{notes}", "--init", "{init}", "--reference", "{reference}", "--drop_iserror", "true",
              "--spacy_model", "en_core_sci_md", "--dask_workers", "2", "--num_devices", "2",
              "--worker_hosts", "a:1,b:2", "--task_index", "1", "--iterations_per_loop", "10"],
    "scratch": ["--notes", "{notes}", "--init", "scratch", "--model_size", "small", "--corpus", "discharge"],
}


def _inputs(tmp_path: Path) -> dict[str, str]:
    """A notes file, a BioBERT-shaped checkpoint folder, an HF reference, a MedNLI folder."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    notes = tmp_path / "NOTEEVENTS.csv.gz"
    notes.write_bytes(b"")
    init = tmp_path / "biobert_v1.0_pubmed_pmc"
    init.mkdir()
    for name in ("biobert_model.ckpt.index", "biobert_model.ckpt.data-00000-of-00001"):
        (init / name).write_bytes(b"")
    (init / "bert_config.json").write_text("{}")
    (init / "vocab.txt").write_text("[PAD]\n")
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "config.json").write_text("{}")
    (tmp_path / "eval" / "mednli").mkdir(parents=True)
    for name in MEDNLI_FILES:
        (tmp_path / "eval" / "mednli" / name).write_text("")
    return {"notes": str(notes), "init": str(init), "reference": str(reference)}


def _commands(tmp_path: Path, case: str, monkeypatch) -> tuple[dict[str, Any], list[list[str]]]:
    """The effective config of a case, and the stage commands (module first) of every step."""
    inputs = _inputs(tmp_path)
    argv = [a.format(**inputs) for a in CASES[case]] + ["--num_workers", "3", "--eval_data",
                                                         str(tmp_path / "eval")]
    cfg = effective_config(build_parser().parse_args(argv))
    run = Run(tmp_path / "run", cfg)
    run.text_dir.mkdir(parents=True)
    (run.text_dir / "radiology-00000.txt").write_text("No acute findings.\n\n")
    commands: list[list[str]] = []

    def record(run: Run, args: list[str]) -> None:
        commands.append(args)
        if args[0] == settings.BUILD_VOCAB:  # what the stage would have written
            run.vocab_file.parent.mkdir(parents=True, exist_ok=True)
            run.vocab_file.write_text("[PAD]\n[UNK]\n")

    monkeypatch.setattr(steps, "run_command", record)
    monkeypatch.setattr(steps, "write_summary", lambda run: None)
    for step in settings.STEP_NAMES:
        steps.STEPS[step](run)
    return cfg, commands


# --- the stages' own parsers ------------------------------------------------------------

def _absl(module: str, argv: list[str], monkeypatch) -> tuple[flags.FlagValues, list[str]]:
    """Parse with the module's define_flags() into a fresh FlagValues (the stages define on
    absl's global FLAGS; every DEFINE is pointed at the fresh one). Returns the flags and
    the positional arguments."""
    fv = flags.FlagValues()
    if module == settings.RUN_PRETRAINING:  # defines into the FlagValues it is given
        importlib.import_module(module).define_flags(fv)
        return fv, fv([module, *argv])[1:]
    with monkeypatch.context() as m:
        for name in dir(flags):
            if name.startswith("DEFINE") or name.startswith("mark_flag"):
                m.setattr(flags, name, functools.partial(getattr(flags, name), flag_values=fv))
        importlib.import_module(module).define_flags()
    rest = fv([module, *argv])  # raises on an unknown flag, a bad value or a missing required one
    return fv, rest[1:]


def _synthetic_notes(argv: list[str], monkeypatch) -> dict[str, Any]:
    """data_prep.synthetic_notes parses inside main(): the call that would write is caught."""
    from data_prep import synthetic_notes
    seen: dict[str, Any] = {}
    monkeypatch.setattr(synthetic_notes, "write_synthetic_notes",
                        lambda out, notes, seed, fmt, lengths: seen.update(out=out, notes=notes, seed=seed))
    assert synthetic_notes.main(argv) == 0
    return seen


def parse(command: list[str], monkeypatch) -> tuple[dict[str, Any], list[str]]:
    """{flag: parsed value} and positional arguments of one stage command."""
    module, argv = command[0], command[1:]
    if module == settings.SYNTHETIC_NOTES:
        return _synthetic_notes(argv, monkeypatch), []
    if module == settings.SECTION_SPLIT:
        return vars(importlib.import_module("section_split.__main__").parse_args(argv)), []
    if module == "recipe.fill_mask":
        args = importlib.import_module("recipe.fill_mask").build_parser().parse_args(argv)
        return vars(args), [args.hf_dir]
    fv, rest = _absl(module, argv, monkeypatch)
    return {name: fv[name].value for name in fv}, rest


# --- the tests -------------------------------------------------------------------------

def _passed(setting: settings.Setting, to: settings.StageFlag, argv: list[str]) -> bool:
    name = f"--{to.flag or setting.name}"
    return any(a == name or a.startswith(name + "=") for a in argv)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_command_parses_and_the_table_values_arrive(tmp_path, monkeypatch, case):
    cfg, commands = _commands(tmp_path, case, monkeypatch)
    stages_run = {c[0] for c in commands}
    for command in commands:
        values, _ = parse(command, monkeypatch)
        for setting in settings.SETTINGS:
            for to in setting.stages:
                if to.stage != command[0]:
                    continue
                if not _passed(setting, to, command[1:]):
                    assert to.when != "always" or to.requires or setting.name not in cfg, \
                        (command[0], setting.name)
                    continue
                arrived = values[to.flag or setting.name]
                assert arrived == cfg[setting.name], (command[0], setting.name, arrived)
    assert {settings.SECTION_SPLIT, settings.CREATE_PRETRAINING_DATA, settings.RUN_PRETRAINING,
            settings.CONVERT_TO_HUGGINGFACE, settings.DOWNSTREAM_RUN} <= stages_run


def test_every_stage_of_the_table_runs_in_some_case(tmp_path, monkeypatch):
    ran = set()
    for case in CASES:
        ran |= {c[0] for c in _commands(tmp_path / case, case, monkeypatch)[1]}
    assert {to.stage for s in settings.SETTINGS for to in s.stages} <= ran
    assert {"bert.compare_weights", "downstream_tasks.compare", "recipe.fill_mask"} <= ran


def test_paper_preset_reaches_the_stages(tmp_path, monkeypatch):
    cfg, commands = _commands(tmp_path, "paper", monkeypatch)
    by_stage = {c[0]: c for c in commands}
    assert settings.SYNTHETIC_NOTES not in by_stage and settings.BUILD_VOCAB not in by_stage
    tfrecords, _ = parse(by_stage[settings.CREATE_PRETRAINING_DATA], monkeypatch)
    assert (tfrecords["max_seq_length"], tfrecords["max_predictions_per_seq"], tfrecords["dupe_factor"],
            tfrecords["masked_lm_prob"], tfrecords["random_seed"], tfrecords["do_lower_case"]) == \
        (128, 20, 5, 0.15, 12345, False)
    assert (tfrecords["num_workers"], tfrecords["dask_workers"]) == (3, 2)
    assert tfrecords["vocab_file"] == cfg["init"]["vocab_file"]
    train, _ = parse(by_stage[settings.RUN_PRETRAINING], monkeypatch)
    assert (train["learning_rate"], train["num_train_steps"], train["num_warmup_steps"],
            train["train_batch_size"], train["max_predictions_per_seq"], train["save_checkpoints_steps"]) == \
        (5e-5, 150000, 10000, 32, 20, 50000)
    assert train["init_checkpoint"] == cfg["init"]["prefix"] and train["do_train"] and train["do_eval"]
    assert (train["num_devices"], train["worker_hosts"], train["task_index"], train["iterations_per_loop"]) == \
        (2, "a:1,b:2", 1, 10)
    assert train["use_amp"] is False and train["amp_dtype"] == "bfloat16"  # not passed without --use_amp
    text, _ = parse(by_stage[settings.SECTION_SPLIT], monkeypatch)
    assert (text["corpus"], text["drop_iserror"], text["fix_known_bugs"], text["spacy_model"]) == \
        ("all", True, False, "en_core_sci_md")
    compare, models = parse([c for c in commands if c[0] == "bert.compare_weights"][-1], monkeypatch)
    assert models == [str(tmp_path / "run" / "huggingface"), cfg["reference"]]


def test_demo_preset_reaches_the_stages(tmp_path, monkeypatch):
    cfg, commands = _commands(tmp_path, "demo", monkeypatch)
    by_stage = {c[0]: c for c in commands}
    notes, _ = parse(by_stage[settings.SYNTHETIC_NOTES], monkeypatch)
    assert (notes["notes"], notes["seed"]) == (1000, 0)
    vocab, _ = parse(by_stage[settings.BUILD_VOCAB], monkeypatch)
    assert vocab["vocab_size"] == 4000 and vocab["do_lower_case"] is False
    tfrecords, _ = parse(by_stage[settings.CREATE_PRETRAINING_DATA], monkeypatch)
    assert (tfrecords["dupe_factor"], tfrecords["max_seq_length"], tfrecords["scheduler"]) == \
        (3, 128, "tcp://10.0.0.1:8786")
    train, _ = parse(by_stage[settings.RUN_PRETRAINING], monkeypatch)
    assert (train["learning_rate"], train["num_train_steps"], train["num_warmup_steps"],
            train["save_checkpoints_steps"], train["max_eval_steps"]) == (5e-4, 1000, 100, 500, 20)
    assert (train["use_amp"], train["amp_dtype"], train["log_every_n_steps"]) == (True, "float16", 7)
    assert train["init_checkpoint"] is None
    assert train["bert_config_file"] == str(tmp_path / "run/vocab/bert_config.json")
    text, _ = parse(by_stage[settings.SECTION_SPLIT], monkeypatch)
    assert (text["fix_known_bugs"], text["shard_notes"], text["note_time_budget"], text["num_workers"]) == \
        (True, 4, 5.0, 3)
    evaluate, _ = parse(by_stage[settings.DOWNSTREAM_RUN], monkeypatch)
    assert (evaluate["task"], evaluate["preset"], evaluate["seeds"], evaluate["max_steps"]) == \
        ("mednli", "paper", "1,2", 3)
    assert settings.stage_flags(cfg, settings.CONVERT_TO_HUGGINGFACE) == ["--do_lower_case=false"]


def test_scratch_run_builds_a_vocab_of_the_scratch_size(tmp_path, monkeypatch):
    cfg, commands = _commands(tmp_path, "scratch", monkeypatch)
    by_stage = {c[0]: c for c in commands}
    vocab, _ = parse(by_stage[settings.BUILD_VOCAB], monkeypatch)
    assert vocab["vocab_size"] == settings.VOCAB_SIZE_FROM_NOTES
    train, _ = parse(by_stage[settings.RUN_PRETRAINING], monkeypatch)
    assert train["num_train_steps"] == 100000  # --corpus discharge
    assert (cfg["tiny_hidden_size"], cfg["tiny_layers"]) == (512, 4)  # --model_size small


def test_an_unknown_stage_flag_is_caught(monkeypatch):
    """The check above can fail: a flag the stage does not define is refused."""
    with pytest.raises(flags.UnrecognizedFlagError):
        _absl(settings.CREATE_PRETRAINING_DATA, ["--input_file=x", "--vocab_file=v", "--dupe_factr=3"],
              monkeypatch)
    with pytest.raises(SystemExit):
        importlib.import_module("section_split.__main__").parse_args(
            ["--input", "x", "--output_dir", "y", "--num_workerz=2"])
