"""The layout of a run folder: where each step writes inside it, and the run's
configuration and lock. The steps, the runner and the summary share it."""
from __future__ import annotations

from pathlib import Path
from typing import Any


class Run:
    """A run folder, its configuration, and the run-folder lock's descriptor (inherited by
    every stage, so the folder stays locked while any stage process lives)."""

    def __init__(self, run_dir: Path, cfg: dict[str, Any], lock_fd: int | None = None) -> None:
        self.dir, self.cfg, self.lock_fd = run_dir, cfg, lock_fd

    # Paths of each stage's outputs inside the run folder.
    @property
    def notes(self) -> Path:
        """The notes the text step reads: --notes, or the demo's synthetic notes."""
        return Path(self.cfg["notes"]) if self.cfg.get("notes") else self.dir / "notes" / "NOTEEVENTS.csv.gz"

    text_dir = property(lambda self: self.dir / "text")
    tfrecord_dir = property(lambda self: self.dir / "tfrecords")
    model_dir = property(lambda self: self.dir / "pretrain")
    export_dir = property(lambda self: self.dir / "huggingface")
    compare_dir = property(lambda self: self.dir / "compare")
    evaluate_dir = property(lambda self: self.dir / "evaluate")

    @property
    def vocab_file(self) -> Path:
        """The --init checkpoint's vocab, or the one the vocab step writes."""
        if self.cfg.get("init"):
            return Path(self.cfg["init"]["vocab_file"])
        return self.dir / "vocab" / "vocab.txt"

    @property
    def bert_config_file(self) -> Path:
        """The --init checkpoint's bert_config.json, or the one the vocab step writes."""
        if self.cfg.get("init"):
            return Path(self.cfg["init"]["bert_config_file"])
        return self.dir / "vocab" / "bert_config.json"

    def marker(self, step: str) -> Path:
        """The step's done-marker (recipe.runner)."""
        return self.dir / ".steps" / f"{step}.json"
