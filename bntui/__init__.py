"""bntui: learn batch normalization and backpropagation by stepping through them."""

import os

# The engine's matrices are small (a few thousand rows): a multi-threaded BLAS spends more
# time waking and spinning its threads than multiplying, and its spinning threads starve
# the app's training worker (measured: 18 vs 728 steps in 3 s of play on seed-digits).
# One thread unless the user asked otherwise; this only works before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
