"""Input file lists: the one way every stage turns `--input_file a,b*,c` into files."""
from __future__ import annotations

import glob
import os

from utils.cli import UserError


class InputFilesError(UserError):
    """An input list that names no file, a glob that matches nothing, an unreadable file."""


def expand_input_files(input_file: str, flag: str = "--input_file") -> list[str]:
    """Comma-separated names/globs -> existing, readable files.

    Explicit names keep their order; each glob's matches are sorted (Google used
    tf.gfile.Glob, whose order is the filesystem's). A glob matching nothing is an error
    (silently training on fewer files than asked is worse than stopping), as is a list
    that names no file, a missing, unreadable or directory entry.
    """
    files: list[str] = []
    for pattern in input_file.split(","):
        pattern = pattern.strip()
        if not pattern:
            continue
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise InputFilesError(f"{pattern}: input glob matches no file")
            files.extend(matches)
        else:
            files.append(pattern)
    if not files:
        raise InputFilesError(f"{flag} names no file")
    for f in files:
        if not os.path.isfile(f):
            raise InputFilesError(f"{f}: input file not found" + (" (a directory)" if os.path.isdir(f) else ""))
        if not os.access(f, os.R_OK):
            raise InputFilesError(f"{f}: input file not readable")
    return files
