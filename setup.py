"""The C helper of the package; everything else is in pyproject.toml.

Kept as setup.py: declaring an extension in pyproject.toml (`[tool.setuptools.ext-modules]`)
is still experimental in setuptools (a warning on every build, and absent before 74.1),
and `python setup.py build_ext --inplace`, which some messages still suggest, keeps
working with it.

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
