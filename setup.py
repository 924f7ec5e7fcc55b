"""The C helper of the package; everything else is in pyproject.toml.

Kept as setup.py because the setuptools the venv gets (>= 65, see requirements-common.txt)
cannot declare an extension in pyproject.toml (`[tool.setuptools] ext-modules` only
exists, as experimental, from setuptools 74.1).

bert/_cpd_native.c is the fast path of bert.create_pretraining_data (plain C99 + the
CPython API; gcc on any Linux). It is optional: where it cannot be compiled (no
compiler), the install goes on with a warning and the pure-Python reference path runs.
`pip install -e .` builds it into bert/ (and rebuilds it when rerun).
"""
from setuptools import Extension, setup

setup(
    ext_modules=[Extension("bert._cpd_native", ["bert/_cpd_native.c"],
                           extra_compile_args=["-O3", "-std=gnu99", "-Wall"],
                           optional=True)],
)
