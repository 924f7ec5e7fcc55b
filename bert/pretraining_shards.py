"""Per-shard mode of create_pretraining_data (`--output_dir`): every input file is its own
run, written to DIR/<stem>.tfrecord with a JSON sidecar, on local processes or Dask
workers (utils.executor). A rerun skips shards whose sidecar matches.

Each shard's records depend only on its input, the vocab and the settings (its seed is
`random_seed`, or `random_seed + i` with --seed_per_shard), never on where or in which
order it ran; results are consumed in submission order, so the log and the totals are
the same too. The sidecar is a utils.resume_record record (settings, the input text's
fingerprint, the output's size and sha256, the counts); one of an older format is
refused before any shard runs. A shard's output appears atomically and its sidecar
last, so a worker killed mid-shard (Dask reruns the task elsewhere) or a killed run
(rerun the command) leaves at most a `.NAME.tmp-*` temp, which the next run of the
stage removes.
"""
from __future__ import annotations

import concurrent.futures as cf
import concurrent.futures.process  # noqa: F401 (cf.process.BrokenProcessPool)
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from bert.pretraining_io import InputError, load_tokenizer, output_errors
from utils.atomic import remove_stale_temps
from utils.cli import UserError
from utils.executor import ExecutorSettings, work_executor, worker_died
from utils.fingerprint import FileFacts, fingerprint_files, sha256_file
from utils.progress import Progress
from utils.resume_record import make_record, output_entry, read_record, unmet, write_record

# create_pretraining_data.run: (input_files, output_files, tokenizer, *, label, settings...) -> counts
WriteRecords = Callable[..., dict[str, Any]]
log = logging.getLogger("create_pretraining_data")

RECORD_KIND = "create_pretraining_data.shard"
_OLD_ADVICE = "use another --output_dir, or finish it with the version of this project that started it"


def shard_plan(input_files: Sequence[str], output_dir: str, settings: dict, options: dict,
               seed_per_shard: bool) -> list[dict]:
    """One job per input file (in expanded --input_file order): its output and the
    `settings` (everything that decides the records, incl. the vocab's sha256) its sidecar
    must match; `options` (vocab path, path choice, logging) do not change the records.
    Paths are absolute: a Dask worker may run in another folder."""
    stems = [Path(f).stem for f in input_files]
    dupes = {s for s in stems if stems.count(s) > 1}
    if dupes:
        raise InputError(f"{sorted(dupes)[0]}: two input files share this stem; "
                         "--output_dir needs distinct file names")
    out_dir = Path(os.path.abspath(output_dir))
    jobs = []
    for index, path in enumerate(input_files):
        s = dict(settings, random_seed=settings["random_seed"] + (index if seed_per_shard else 0))
        jobs.append({"input": os.path.abspath(path), "output": str(out_dir / f"{stems[index]}.tfrecord"),
                     "settings": s, "options": options})
    return jobs


def sidecar_path(job: dict) -> Path:
    """The shard's resume record: DIR/<stem>.tfrecord.json."""
    return Path(job["output"] + ".json")


def shard_inputs(job: dict, facts: FileFacts | None = None) -> dict:
    """The shard's input text as resume-record inputs (fingerprint cached by size and mtime,
    so a rerun does not hash every text shard again)."""
    return {"text": fingerprint_files([job["input"]], facts)}


def sidecar_matches(job: dict, inputs: dict) -> bool:
    """Whether the shard is done by the one resume rule (utils.resume_record.unmet): its
    record names these settings and this input's content, and the output has its recorded
    size. Absent or damaged: redone; an older format: refused (OldRecordError)."""
    record = read_record(sidecar_path(job), _OLD_ADVICE)
    return unmet(record, kind=RECORD_KIND, settings=job["settings"], inputs=inputs,
                 folder=Path(job["output"]).parent) is None


def run_shard(job: dict, write_records: WriteRecords) -> tuple[str, dict | None]:
    """Process one shard unless its sidecar says it is done; returns (output, counts|None).
    Runs in a worker: everything it needs is in `job`; `write_records` is
    create_pretraining_data's `run` (passed in, so that this module does not import the
    CLI module that imports it; it pickles by name to the workers)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    facts = FileFacts()
    inputs = shard_inputs(job, facts)
    if sidecar_matches(job, inputs):
        return job["output"], None
    s, o = dict(job["settings"]), dict(job["options"])
    vocab_file = o.pop("vocab_file")
    if sha256_file(vocab_file) != s.pop("vocab_sha256"):
        raise InputError(f"{vocab_file}: vocab file changed during the run")
    tokenizer = load_tokenizer(vocab_file, s.pop("do_lower_case"))
    counts = write_records([job["input"]], [job["output"]], tokenizer, label=Path(job["input"]).name, **s, **o)
    # The sidecar is written last: its presence (with matching sizes) marks a finished shard.
    with output_errors(Path(job["output"]).parent):
        write_record(sidecar_path(job), make_record(
            RECORD_KIND, settings=job["settings"], inputs=inputs,
            outputs=[output_entry(job["output"], Path(job["output"]).parent, facts=facts)], counts=counts))
    return job["output"], counts


def run_shard_reporting(job: dict, write_records: WriteRecords) -> tuple[str, dict | None | UserError]:
    """run_shard for a worker: a UserError (bad input, full disk) comes back as the
    result, to be raised by the main process as one line; on Dask a raised one would also
    be logged by the worker as a failed task, with its traceback."""
    try:
        return run_shard(job, write_records)
    except UserError as exc:
        return job["output"], exc


class WorkerDiedError(UserError):
    """A worker process died under a shard (killed, out of memory): one line, rerun resumes."""


def _result(future: cf.Future, job: dict) -> tuple[str, dict | None]:
    """The shard's result. A worker that died (the local pool breaks; Dask gives up on a
    shard after its retries) is one line naming the output folder or the shard: the
    OOM killer is the usual cause, not a bug."""
    try:
        return future.result()
    except Exception as exc:
        if not worker_died(exc):
            raise
        if isinstance(exc, cf.process.BrokenProcessPool):
            raise WorkerDiedError(f"{Path(job['output']).parent}: a worker process died while the "
                                  "shards ran (killed, or out of memory: each needs ~3 bytes per byte "
                                  "of its shard's text); rerun the same command to resume") from None
        raise WorkerDiedError(f"{job['input']}: every Dask worker that ran this shard died "
                              "(out of memory? each needs ~3 bytes per byte of the shard's "
                              "text); rerun the same command to resume") from None


def run_shards(jobs: list[dict], executor: ExecutorSettings, write_records: WriteRecords) -> dict[str, int]:
    """Run the shard jobs where `executor` says (this process, a local pool, Dask), each
    through `write_records` (create_pretraining_data.run); the outputs and the returned
    totals do not depend on where they ran."""
    total = {"shards": len(jobs), "skipped": 0, "documents": 0, "segments": 0, "instances": 0}
    for job in jobs:  # an older format's sidecar is refused before any shard is written
        read_record(sidecar_path(job), _OLD_ADVICE)
    folders = sorted({str(Path(j["output"]).parent) for j in jobs})
    for folder in folders:
        with output_errors(folder):
            os.makedirs(folder, exist_ok=True)
        stale = remove_stale_temps(folder)
        if stale:
            log.info("%s: removed %d temp file(s) left by an earlier, interrupted run", folder, len(stale))
    log.info("%d shard(s) on %s", len(jobs), executor.describe())
    if executor.uses_dask:  # Dask's INFO lines (every connection) would drown ours
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # read when dask loads
    progress = Progress("shards", total=len(jobs), label="create_pretraining_data")
    with work_executor(executor) as pool:
        futures = [pool.submit(run_shard_reporting, job, write_records) for job in jobs]
        for job, future in zip(jobs, futures):  # submission order: log and totals never depend on timing
            output, counts = _result(future, job)
            if isinstance(counts, UserError):
                raise counts
            if counts is None:
                total["skipped"] += 1
                log.info("%s: up to date (sidecar matches), skipped", output)
            else:
                for k, v in counts.items():
                    total[k] += v
            progress.update(1)
    progress.done()
    return total
