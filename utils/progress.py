"""Progress lines on stderr: count, rate and ETA, at most one line every few seconds.

Never prints data (clinical text is under a data use agreement), only counts.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Progress:
    """Throttled progress reporter.

    >>> p = Progress("notes", total=1000)
    >>> p.update(10)          # prints when `interval` seconds passed since the last line
    >>> p.done()              # always prints a final line
    """

    def __init__(self, unit: str, total: int | None = None, label: str = "",
                 interval: float = 5.0, stream: TextIO | None = None) -> None:
        self.unit, self.total, self.label = unit, total, label
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.extra: dict[str, int] = {}
        self.start = self._last = time.monotonic()

    def update(self, n: int = 1, **extra: int) -> None:
        self.count += n
        for k, v in extra.items():
            self.extra[k] = self.extra.get(k, 0) + v
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._print(now)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        rate = self.count / elapsed
        parts = [f"{self.label + ': ' if self.label else ''}{self.count:,}"
                 + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"]
        parts += [f"{v:,} {k}" for k, v in self.extra.items()]
        parts.append(f"{rate:,.1f} {self.unit}/s")
        parts.append(f"elapsed {_fmt_duration(elapsed)}")
        if self.total and rate > 0 and self.count < self.total:
            parts.append(f"ETA {_fmt_duration((self.total - self.count) / rate)}")
        return ", ".join(parts)

    def _print(self, now: float) -> None:
        print(self.line(now), file=self.stream, flush=True)

    def done(self) -> None:
        self._print(time.monotonic())
