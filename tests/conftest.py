"""Test setup: the same single-threaded BLAS the app and the command line use, and
hypothesis examples fixed under CI (CI=true) so a run never depends on a random draw, and
the fixtures of the app's loading tests (a held dataset load, a big CSV)."""

import os
from collections.abc import Iterator
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as bntui/__init__.py does, before numpy loads

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


# the app's held loads (tests/app_helpers.HeldLoads) ------------------------------------
@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The app's loader holding back the datasets a test names in `held.held`."""
    from app_helpers import HeldLoads

    import bntui.ui.loader as loader_module

    loads = HeldLoads()
    monkeypatch.setattr(loader_module, "build_dataset", loads)
    yield loads
    loads.release()


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 rows × 10 features, 4 classes: 16,000 training rows, more than every sample."""
    from bntui.bench import write_scale_csv

    return write_scale_csv(tmp_path_factory.mktemp("big") / "big.csv", 20_000)
