"""Test setup: the same single-threaded BLAS the app and the command line use."""

import bntui  # noqa: F401  (sets the BLAS thread count before numpy loads)
