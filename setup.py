# The C runtime is compiled into the package by cffi (API mode) during the package build.
from setuptools import setup

setup(cffi_modules=["tunable/_ffi_build.py:ffibuilder"])
