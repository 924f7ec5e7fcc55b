"""Builds the project's native helpers in place: `python setup.py build_ext --inplace`.

bert/_cpd_native.c is the fast path of bert.create_pretraining_data (plain C99 + the
CPython API; gcc on any Linux). Without it the pure-Python reference path runs.
"""
from setuptools import Extension, setup

setup(
    name="clinicalbert-native",
    version="0",
    ext_modules=[Extension("bert._cpd_native", ["bert/_cpd_native.c"],
                           extra_compile_args=["-O3", "-std=gnu99", "-Wall"])],
)
