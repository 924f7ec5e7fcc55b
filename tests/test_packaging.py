"""The project as an installed package (pyproject.toml, setup.py, scripts/ensure_venv.sh):
the venv's editable install provides the packages and the clinicalbert-* commands without
PYTHONPATH, and the C helper is optional (a machine without a compiler still installs)."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCRIPTS = PYPROJECT["project"]["scripts"]
DIST = PYPROJECT["project"]["name"]
BIN = Path(sys.executable).parent
# Everything a build reads: the packaging files and the installed packages.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", *PYPROJECT["tool"]["setuptools"]["packages"])


def _env() -> dict[str, str]:
    """This environment without PYTHONPATH: the install alone must find the packages."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def test_installed_commands_are_the_ones_pyproject_declares():
    # the install is current with pyproject.toml (ensure_venv.sh reinstalls on a change)
    installed = {ep.name: ep.value for ep in importlib.metadata.distribution(DIST).entry_points
                 if ep.group == "console_scripts"}
    assert installed == SCRIPTS
    assert {"clinicalbert-recipe", "clinicalbert-section-split", "clinicalbert-create-pretraining-data",
            "clinicalbert-run-pretraining", "clinicalbert-build-vocab", "clinicalbert-convert-to-hf",
            "clinicalbert-convert-from-hf", "clinicalbert-compare-weights",
            "clinicalbert-downstream"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_command_runs_an_existing_stage_module(name):
    entry = importlib.metadata.EntryPoint(name=name, value=SCRIPTS[name], group="console_scripts")
    command = entry.load()
    assert callable(command) and (BIN / name).is_file()
    # what `python -m MODULE` would run: the module, or a package's __main__
    spec = importlib.util.find_spec(command.module)
    assert spec is not None, command.module
    if spec.submodule_search_locations is not None:
        spec = importlib.util.find_spec(command.module + ".__main__")
    assert spec is not None and Path(spec.origin).is_relative_to(REPO), command.module
    assert 'if __name__ == "__main__":' in Path(spec.origin).read_text()


@pytest.mark.parametrize("name, usage", [
    ("clinicalbert-section-split", "usage: python -m section_split"),   # argparse
    ("clinicalbert-build-vocab", "--vocab_size"),                       # absl, through utils.cli
    ("clinicalbert-recipe", "usage: run_pretraining.sh"),
])
def test_help_of_installed_commands_exits_0_whatever_the_current_folder_holds(tmp_path, name, usage):
    # A folder named like our packages in the caller's directory does not shadow them.
    for package in ("section_split", "bert", "recipe", "utils"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("raise ImportError('shadowed')\n")
    res = subprocess.run([str(BIN / name), "--help"], cwd=tmp_path, env=_env(), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert usage in res.stdout and "shadowed" not in res.stderr


def test_run_pretraining_sh_way_finds_the_packages_without_pythonpath(tmp_path):
    # run_pretraining.sh: `python -P -m recipe` from the caller's folder, no PYTHONPATH
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "__init__.py").write_text("raise ImportError('shadowed')\n")
    res = subprocess.run([sys.executable, "-P", "-m", "recipe", "--help"], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "usage: run_pretraining.sh" in res.stdout, res.stderr


def test_editable_install_built_the_c_helper_in_place():
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler here: the helper is optional")
    from bert import _cpd_native
    assert Path(_cpd_native.__file__).parent == REPO / "bert"


def _build_wheel(tmp_path: Path, **env: str) -> zipfile.ZipFile:
    """A wheel of a copy of the project (a build writes build/ and *.egg-info into the
    source folder, which must not race other tests in the checkout)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy(REPO / name, src / name)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "--disable-pip-version-check", "-w", str(tmp_path / "out"), str(src)],
                         env={**_env(), **env}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    [wheel] = (tmp_path / "out").glob("*.whl")
    return zipfile.ZipFile(wheel)


def test_without_a_compiler_the_install_succeeds_without_the_c_helper(tmp_path):
    names = _build_wheel(tmp_path, CC="/bin/false").namelist()
    assert "bert/create_pretraining_data.py" in names and "utils/entry_points.py" in names
    assert not any(n.startswith("bert/_cpd_native") and n.endswith(".so") for n in names)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_with_a_compiler_the_wheel_carries_the_c_helper(tmp_path):
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler here: the helper is optional")
    names = _build_wheel(tmp_path).namelist()
    assert [n for n in names if n.endswith(".so")] == [
        n for n in names if n.startswith("bert/_cpd_native.") and n.endswith(".so")] != []
