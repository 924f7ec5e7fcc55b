"""scripts/ensure_venv.sh picks the TensorFlow build for the machine, and the venv holds
exactly one TensorFlow distribution.

The device choice and the project's install command are checked in the script's dry-run
mode (CLINICALBERT_SETUP_DRY_RUN=1), which prints them and exits before touching .venv:
the venv is never reinstalled by a test (tests/test_packaging.py checks the install).
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "ensure_venv.sh"
# Every distribution name that ships the `tensorflow` package itself.
TF_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                    "tensorflow-macos", "tf-nightly", "tf-nightly-cpu", "tf-nightly-gpu"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_exactly_one_tensorflow_distribution_is_installed():
    names = {_normalise(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    installed = sorted(names & TF_DISTRIBUTIONS)
    assert len(installed) == 1, f"TensorFlow distributions installed: {installed}"


def _bin_dir(tmp_path: Path, nvidia_smi: str | None) -> Path:
    """A PATH folder with the tools the script needs and, optionally, a fake nvidia-smi."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dirname", "basename", "grep", "cat", "sha256sum", "cut", "env"):
        found = shutil.which(tool)
        assert found, tool
        (bindir / tool).symlink_to(found)
    if nvidia_smi is not None:
        fake = bindir / "nvidia-smi"
        fake.write_text("#!/bin/bash\n" + nvidia_smi)
        fake.chmod(0o755)
    return bindir


def _dry_run(tmp_path: Path, nvidia_smi: str | None, device: str | None = None):
    env = {"PATH": str(_bin_dir(tmp_path, nvidia_smi)), "CLINICALBERT_SETUP_DRY_RUN": "1",
           "HOME": str(tmp_path)}
    if device is not None:
        env["CLINICALBERT_DEVICE"] = device
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env,
                          timeout=60)


GPU_LIST = "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)'\n"
NO_GPU = "echo 'No devices were found' >&2; exit 6\n"


@pytest.mark.parametrize("nvidia_smi, device, expect", [
    (GPU_LIST, None, "gpu"),               # nvidia-smi -L lists a GPU
    (NO_GPU, None, "cpu"),                 # the driver tool is there but sees no GPU
    (None, None, "cpu"),                   # no nvidia-smi at all
    (NO_GPU, "gpu", "gpu"),                # CLINICALBERT_DEVICE overrides the probe
    (GPU_LIST, "cpu", "cpu"),
], ids=["gpu-listed", "no-gpu", "no-nvidia-smi", "forced-gpu", "forced-cpu"])
def test_device_choice(tmp_path, nvidia_smi, device, expect):
    before = sorted(os.listdir(REPO))
    res = _dry_run(tmp_path, nvidia_smi, device)
    assert res.returncode == 0, res.stderr
    runtime = {"gpu": "requirements-gpu.txt", "cpu": "requirements.txt"}[expect]
    assert res.stdout.strip().splitlines() == [
        f"device={expect} requirements={runtime} requirements-test.txt",
        # then the project itself, editable, on top of the pinned requirements
        "project=pip install --no-deps --no-build-isolation -e ."]
    assert sorted(os.listdir(REPO)) == before  # nothing created or removed


def test_bad_device_value_is_refused(tmp_path):
    res = _dry_run(tmp_path, None, "tpu")
    assert res.returncode == 2
    assert "CLINICALBERT_DEVICE must be cpu or gpu, not 'tpu'" in res.stderr


def test_runtime_files_pull_one_tensorflow_each():
    """The requirement files the choice points at: one TensorFlow per runtime, none in the
    test extras (so one pip call never resolves two TensorFlow builds)."""
    def tf_lines(name: str) -> list[str]:
        lines = (REPO / name).read_text().splitlines()
        return [line.split("[")[0].split(">")[0].split("=")[0].strip() for line in lines
                if line.strip() and not line.startswith(("#", "-r"))
                and _normalise(re.split(r"[\[<>=~ ]", line.strip())[0]) in TF_DISTRIBUTIONS]
    assert tf_lines("requirements.txt") == ["tensorflow-cpu"]
    assert tf_lines("requirements-gpu.txt") == ["tensorflow"]
    assert tf_lines("requirements-test.txt") == []
    assert tf_lines("requirements-common.txt") == []
