"""Only what pyproject.toml cannot say: the cffi extension is built by the package build."""
from setuptools import setup

setup(cffi_modules=["native/build_workers.py:ffibuilder"])
