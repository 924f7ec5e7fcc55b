"""One error convention for every command of the project.

A `UserError` is a problem with the user's input or environment (a missing file, a bad
setting, a full disk): the command prints `PROG: error: MESSAGE` on one line to stderr
and exits 1 (2 for a usage error). Every other exception is a bug and keeps its
traceback. Stage modules raise subclasses of `UserError` (so the recipe and tests can
tell them apart) and wrap their `main` with `run_main`.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn, Sequence


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit status 1."""

    exit_code = 1


class UsageError(UserError):
    """A malformed command line (unknown or contradictory options): exit status 2."""

    exit_code = 2


def os_error_message(exc: OSError, what: str = "") -> str:
    """`[what: ]path: strerror` for an OSError, without Python's `[Errno N]` noise."""
    path = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    parts = [p for p in (what, str(path) if path != "" else "", reason) if p]
    return ": ".join(parts)


def fail(prog: str, message: str, code: int = 1) -> NoReturn:
    """Print one error line and exit."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def run_main(prog: str, main: Callable[..., int | None], *args: object) -> int:
    """Call `main(*args)`; turn a `UserError` into one line on stderr and its exit code.

    A KeyboardInterrupt exits 130 with one line (work already finished is kept by each
    stage's atomic outputs). Anything else propagates with its traceback: it is a bug.
    """
    try:
        code = main(*args)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:  # e.g. `... | head`: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return int(code or 0)


def absl_main(prog: str, main: Callable[[Sequence[str]], int | None]) -> Callable[[Sequence[str]], None]:
    """Wrap an absl `main(argv)` for `app.run`, with the convention above."""
    def _main(argv: Sequence[str]) -> None:
        sys.exit(run_main(prog, main, argv))
    return _main


_HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


def absl_run(prog: str, main: Callable[[Sequence[str]], int | None]) -> None:
    """`app.run(absl_main(prog, main))`, except that asking for help exits 0 (absl exits 1
    after printing the flags and their help lines)."""
    from absl import app
    asked_for_help = any(a.split("=")[0] in _HELP_FLAGS for a in sys.argv[1:])
    try:
        app.run(absl_main(prog, main))
    except SystemExit as exc:
        if exc.code == 1 and asked_for_help:
            raise SystemExit(0) from None
        raise
    except BrokenPipeError:  # e.g. `--help | head`: the reader left, not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0 if asked_for_help else 1) from None
