"""Import TensorFlow without its start-up banners: the one place every command does it.

TensorFlow's C++ side prints "oneDNN custom operations are on ..." and "All log messages
before absl::InitializeLog() is called ..." on import, before any log setting applies,
once per process. Commands import TensorFlow through `import_tensorflow()`, which sets
TF_CPP_MIN_LOG_LEVEL=2 unless the user chose a level, captures stderr during the import
and passes on every line but those banners. TF_CPP_MIN_LOG_LEVEL=0 shows everything.
"""
from __future__ import annotations

import os
import sys
import tempfile
from types import ModuleType

_BANNERS = ("All log messages before absl::InitializeLog() is called",
            "oneDNN custom operations are on")


def import_tensorflow() -> ModuleType:
    """`import tensorflow`, quietly the first time in this process; returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if not any(b in line for b in _BANNERS):
                    print(line, file=sys.stderr)
    return tensorflow
