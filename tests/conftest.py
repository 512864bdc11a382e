"""Test setup: the same single-threaded BLAS the app and the command line use, and
hypothesis examples fixed under CI (CI=true) so a run never depends on a random draw."""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as bntui/__init__.py does, before numpy loads

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
