"""Test setup: the same single-threaded BLAS the app and the command line use, and
hypothesis examples fixed under CI (CI=true) so a run never depends on a random draw."""

import os

import bntui  # noqa: F401  (sets the BLAS thread count before numpy loads)
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
