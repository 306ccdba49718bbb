"""The one part of the build pyproject.toml cannot declare: the scanner's C helper.

``optional=True``: without a C compiler the install goes on and the scan runs the same test in
Python (canary/scan/verify.py), about twice slower with 100,000 canaries, with the same results.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("canary.scan._probes", ["canary/scan/_probes.c"], optional=True)])
