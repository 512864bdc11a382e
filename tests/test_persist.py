"""Saving and loading sessions: exact round trips, the file format, atomic writes, errors."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zip_helpers import bomb_session, npy_header

import bntui
from bntui.engine import BntuiError, RunConfig, Session, persist, preset
from bntui.engine.persist import FORMAT, MAX_META_BYTES, VERSION, load_session, save_session

OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


def small(**changes: Any) -> RunConfig:
    return RunConfig(dataset="moons", samples=80, arch="8:tanh,C", steps=12).with_overrides(
        **changes
    )


def assert_same(a: Session, b: Session) -> None:
    """Bit for bit: history, parameters, running stats, optimizer state, counters."""
    assert a.history.to_dict() == b.history.to_dict()
    assert np.array_equal(np.array(a.history.loss), np.array(b.history.loss))
    sa, sb = a.network.state(), b.network.state()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert np.array_equal(sa[key], sb[key]), key
    oa, ob = a.optimizer, b.optimizer
    assert (oa.name, oa.t, oa.hyperparameters()) == (ob.name, ob.t, ob.hyperparameters())
    assert oa.state.keys() == ob.state.keys()
    for key in oa.state:
        assert oa.state[key].keys() == ob.state[key].keys()
        for slot in oa.state[key]:
            assert np.array_equal(oa.state[key][slot], ob.state[key][slot]), (key, slot)
    assert (a.step_count, a.epoch, a.stopped) == (b.step_count, b.epoch, b.stopped)
    assert np.array_equal(a._order, b._order) and a._cursor == b._cursor
    assert a._batch_rng.bit_generator.state == b._batch_rng.bit_generator.state


def round_trip(cfg: RunConfig, path: Path, n: int = 7, m: int = 5) -> tuple[Session, Session]:
    """n steps, saved, loaded, m more; and n + m in one go.  Evaluated at every step: a
    call to train ends with an evaluation, so a run in two calls has one at step n."""
    first = Session(cfg)
    first.train(n, eval_every=1)
    assert save_session(first, path) == path
    resumed = load_session(path)
    assert resumed.config == cfg
    assert_same(first, resumed)
    resumed.train(m, eval_every=1)
    whole = Session(cfg)
    whole.train(n + m, eval_every=1)
    return resumed, whole


# round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [None, 16])
@pytest.mark.parametrize("optimizer", OPTIMIZER_NAMES)
def test_resumed_training_is_bit_identical(
    tmp_path: Path, optimizer: str, batch_size: int | None
) -> None:
    resumed, whole = round_trip(small(optimizer=optimizer, batch_size=batch_size),
                                tmp_path / "run.npz")
    assert_same(resumed, whole)
    assert len(whole.history.loss) == 12


def test_seed_softmax_preset_round_trip(tmp_path: Path) -> None:
    resumed, whole = round_trip(preset("seed-softmax").with_overrides(steps=12),
                                tmp_path / "seed.npz")
    assert_same(resumed, whole)


def test_float32_and_hyper_parameters_round_trip(tmp_path: Path) -> None:
    cfg = small(dtype="float32", optimizer="rmsprop", lr=0.02, batch_size=20,
                hyper=(("rho", 0.9), ("eps", 1e-7)))
    resumed, whole = round_trip(cfg, tmp_path / "f32.npz", n=9, m=6)
    assert_same(resumed, whole)
    assert resumed.network.dtype == np.float32


def test_untrained_session_round_trip(tmp_path: Path) -> None:
    resumed, whole = round_trip(small(batch_size=16), tmp_path / "fresh.npz", n=0, m=6)
    assert_same(resumed, whole)


def test_csv_dataset_round_trip_and_its_file_gone_or_changed(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    csv = tmp_path / "points.csv"

    def write() -> None:
        csv.write_text("".join(f"{a},{b},{c},{k}\n" for (a, b, c), k in zip(X, y, strict=True)))

    write()
    cfg = RunConfig(dataset=str(csv), arch="8:tanh,C", batch_size=8, steps=12)
    resumed, whole = round_trip(cfg, tmp_path / "csv.npz")
    assert_same(resumed, whole)

    X[0, 2] += 1.0  # the same rows and labels, one feature changed
    write()
    with pytest.raises(BntuiError, match=r"csv\.npz.*points\.csv.*changed"):
        load_session(tmp_path / "csv.npz")
    csv.unlink()
    with pytest.raises(BntuiError, match=r"csv\.npz.*points\.csv.*gone"):
        load_session(tmp_path / "csv.npz")


def test_file_is_plain_npz_with_json_meta(tmp_path: Path) -> None:
    s = Session(small(optimizer="adam", batch_size=16))
    s.train(3)
    path = save_session(s, tmp_path / "run.npz")
    with np.load(path, allow_pickle=False) as z:
        files = list(z.files)
        raw = z["meta"]
        arrays = {k: z[k] for k in files if k != "meta"}
    assert raw.shape == () and raw.dtype.kind == "U"
    meta = json.loads(str(raw[()]))
    assert meta["format"] == FORMAT == "bntui-session" and meta["version"] == VERSION == 1
    assert meta["bntui_version"] == bntui.__version__
    assert meta["arrays"] == [k for k in files if k != "meta"]
    assert meta["config"]["arch"] == "8:tanh,C" and meta["config"]["bn"]["eps"] == 1e-5
    assert meta["optimizer"]["name"] == "adam" and meta["optimizer"]["t"] == 3
    assert meta["session"]["step_count"] == 3
    assert meta["history"]["loss"] == s.history.loss
    assert meta["batches"]["rng_state"] == s._batch_rng.bit_generator.state
    assert np.array_equal(arrays["network/1.W"], s.network.params()["1.W"])
    assert np.array_equal(arrays["optimizer/1.W/m"], s.optimizer.state["1.W"]["m"])
    assert np.array_equal(arrays["batches/order"], s._order)
    assert all(a.dtype != object for a in arrays.values())


def test_writes_exactly_the_given_name(tmp_path: Path) -> None:
    path = save_session(Session(small()), str(tmp_path / "run.session"))
    assert path == tmp_path / "run.session" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.session"]
    load_session(path)


def test_save_keeps_the_permissions_of_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "run.npz"
    path.write_bytes(b"old")
    path.chmod(0o640)
    save_session(Session(small()), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_save_errors_are_bntui_errors(tmp_path: Path) -> None:
    s = Session(small())
    with pytest.raises(BntuiError, match=r"nowhere.*does not exist"):
        save_session(s, tmp_path / "nowhere" / "run.npz")
    with pytest.raises(BntuiError, match="is a directory"):
        save_session(s, tmp_path)


# atomic writes ------------------------------------------------------------------------
@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "run.npz"
    save_session(Session(small()), path)
    return path


def test_failed_replace_leaves_the_target_and_no_temp_file(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, listing = target.read_bytes(), sorted(target.parent.iterdir())

    def boom(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    s = Session(small(optimizer="sgd"))
    s.train(2)
    with pytest.raises(BntuiError, match=r"run\.npz.*No space left"):
        save_session(s, target)
    assert target.read_bytes() == before
    assert sorted(target.parent.iterdir()) == listing


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), RuntimeError("crash")])
def test_crash_while_writing_leaves_the_target(
    target: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    before, listing = target.read_bytes(), sorted(target.parent.iterdir())

    def half_written(file: Any, *args: Any, **kwds: Any) -> None:
        file.write(b"PK\x03\x04 half a zip")
        raise error

    monkeypatch.setattr(np, "savez", half_written)
    with pytest.raises(BntuiError if isinstance(error, OSError) else RuntimeError):
        save_session(Session(small()), target)
    assert target.read_bytes() == before
    assert sorted(target.parent.iterdir()) == listing


# errors when loading ------------------------------------------------------------------
def rewrite(
    src: Path,
    dst: Path,
    meta: Callable[[dict[str, Any]], object] | None = None,
    arrays: Callable[[dict[str, np.ndarray]], object] | None = None,
    raw_meta: str | None = None,
) -> Path:
    """Copy a saved session, editing its meta (in place) or its arrays on the way."""
    with np.load(src, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    m = json.loads(str(data["meta"][()]))
    if meta is not None:
        meta(m)
    if arrays is not None:
        arrays(data)
    data["meta"] = np.array(raw_meta if raw_meta is not None else json.dumps(m))
    with open(dst, "wb") as f:
        np.savez(f, **data)
    return dst


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    s = Session(small(optimizer="adam", batch_size=16))
    s.train(5)
    return save_session(s, tmp_path_factory.mktemp("good") / "good.npz")


def _reshape_w(d: dict[str, np.ndarray]) -> None:
    d["network/1.W"] = d["network/1.W"].reshape(-1)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.pop(key)


def _set(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__(key, value)


BAD_FILES: dict[str, tuple[Callable[[Path, Path], object], str]] = {
    "empty": (lambda g, p: p.write_bytes(b""), "empty"),
    "truncated": (lambda g, p: p.write_bytes(g.read_bytes()[: g.stat().st_size // 2]),
                  "truncated or corrupted"),
    "random": (lambda g, p: p.write_bytes(np.random.default_rng(0).bytes(3000)),
               "not a bntui session|not a valid"),
    "npy": (lambda g, p: p.write_bytes(_npy_bytes()), "single .npy array"),
    "foreign": (lambda g, p: _foreign(p), "without 'meta'"),
    "format": (lambda g, p: rewrite(g, p, meta=_set("format", "something-else")),
               "not a bntui session.*something-else"),
    "version": (lambda g, p: rewrite(g, p, meta=_set("version", 99)),
                r"version 99 is newer than this bntui understands \(1\); upgrade bntui"),
    "json": (lambda g, p: rewrite(g, p, raw_meta='{"format": "bntui-session", "vers'),
             "not valid JSON"),
    "not-object": (lambda g, p: rewrite(g, p, raw_meta="[1, 2]"), "not a JSON object"),
    "missing-key": (lambda g, p: rewrite(g, p, meta=_drop("optimizer")), "missing 'optimizer'"),
    "bad-type": (lambda g, p: rewrite(g, p, meta=lambda m: m["session"].update(epoch="x")),
                 "session.epoch"),
    "bad-config": (lambda g, p: rewrite(g, p, meta=lambda m: m["config"].update(steps="x")),
                   "configuration"),
    "unknown-config": (lambda g, p: rewrite(g, p, meta=lambda m: m["config"].update(zz=1)),
                       "unknown configuration field 'zz'"),
    "other-dataset": (lambda g, p: rewrite(g, p, meta=lambda m: m["config"].update(seed=5)),
                      "not the one the session was trained on"),
    "wrong-shape": (lambda g, p: rewrite(g, p, arrays=_reshape_w), r"'network/1\.W'.*shape"),
    "missing-array": (lambda g, p: rewrite(g, p, arrays=lambda d: d.pop("network/2.beta")),
                      "missing array 'network/2.beta'"),
    "extra-array": (lambda g, p: rewrite(g, p, arrays=lambda d: d.update(x=np.ones(2))),
                    "unexpected array 'x'"),
    "optimizer": (lambda g, p: rewrite(g, p, meta=lambda m: m["optimizer"].update(name="sgd")),
                  "optimizer is 'sgd'"),
    "rng": (lambda g, p: rewrite(g, p, meta=lambda m: m["batches"].update(rng_state={})),
            "mini-batch generator"),
    # non-finite values, and arrays no session holds
    "nan-gamma": (lambda g, p: rewrite(g, p, arrays=_poke("network/1.gamma", np.nan)),
                  r"layer 1's gamma holds NaN \(array 'network/1\.gamma'\)"),
    "inf-running-var": (lambda g, p: rewrite(g, p, arrays=_poke("network/1.running_var",
                                                                np.inf)),
                        "layer 1's running_var holds an infinite value"),
    "inf-optimizer": (lambda g, p: rewrite(g, p, arrays=_poke("optimizer/2.W/v", -np.inf)),
                      "the optimizer's v for layer 2's W holds an infinite value"),
    "nan-history": (lambda g, p: rewrite(g, p, meta=lambda m: m["history"]["loss"].__setitem__(
        1, float("nan"))), r"history\.loss holds nan at entry 1"),
    "huge-hyper": (lambda g, p: rewrite(g, p, meta=lambda m: m["optimizer"]["hyper"].update(
        beta1=10**400)), r"adam beta1 1000.*\(401 characters\) is not a finite number"),
    "unknown-slot": (lambda g, p: rewrite(g, p, meta=_list("optimizer/1.W/zz"),
                                          arrays=_copy("optimizer/1.W/m", "optimizer/1.W/zz")),
                     "'optimizer/1.W/zz', but adam keeps only 'm' and 'v'"),
    "objects": (lambda g, p: rewrite(g, p, arrays=_set("network/1.b", np.array([None] * 8))),
                r"'network/1\.b' holds Python objects"),
    "short-order": (lambda g, p: rewrite(g, p, arrays=lambda d: d.update(
        {"batches/order": d["batches/order"][:5]})), "'batches/order' holds 5 positions"),
    "size-lie": (lambda g, p: bomb_session(g, p, "network/1.W", npy_header("<f8", (2, 8)),
                                           2**20), "unpacks to 1,048,704 bytes, but its header"
                 r" describes 256 \(float64 of shape \(2, 8\)\)"),
}


def _poke(key: str, value: float) -> Callable[[dict[str, np.ndarray]], None]:
    def poke(d: dict[str, np.ndarray]) -> None:
        d[key] = d[key].copy()
        d[key].flat[1] = value

    return poke


def _list(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["arrays"].append(name)


def _copy(src: str, dst: str) -> Callable[[dict[str, np.ndarray]], None]:
    return lambda d: d.__setitem__(dst, d[src])


def _foreign(path: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, a=np.ones(3), b=np.zeros(2))


def _npy_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.arange(5))
    return buf.getvalue()


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_raise_one_line_naming_the_file(good: Path, tmp_path: Path, case: str) -> None:
    make, pattern = BAD_FILES[case]
    path = tmp_path / f"bad-{case}.npz"
    make(good, path)
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    with pytest.raises(BntuiError, match=pattern) as info:
        load_session(path)
    message = str(info.value)
    assert path.name in message and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(BntuiError, match=r"nothing\.npz.*not found"):
        load_session(tmp_path / "nothing.npz")
    with pytest.raises(BntuiError, match="is a directory"):
        load_session(tmp_path)


def test_loading_does_not_touch_a_good_file(good: Path) -> None:
    before, mtime = good.read_bytes(), good.stat().st_mtime_ns
    s = load_session(good)
    s.train(3)
    assert good.read_bytes() == before and good.stat().st_mtime_ns == mtime


# zip bombs and arrays read only once they fit -------------------------------------------
GIB = 2**30
BOMBS: dict[str, tuple[str, bytes, int, str]] = {
    # an array whose header names a huge shape: 8 GB of zeros in an 8 MB file
    "shape": ("network/1.W", npy_header("<f8", (100_000, 10_000)), 8 * 10**9,
              r"array 'network/1\.W' has shape \(100000, 10000\), but the network rebuilt "
              r"from its configuration needs \(2, 8\)"),
    # the right shape in the header, 1 GiB behind it
    "size": ("network/1.W", npy_header("<f8", (2, 8)), GIB,
             r"'network/1\.W' unpacks to 1,073,741,952 bytes, but its header describes 256"),
    # the metadata: a JSON string of 1 GiB
    "meta": ("meta", npy_header(f"<U{GIB // 4}", ()), GIB,
             f"its 'meta' would inflate from .* to 1,073,741,952 bytes; at most "
             f"{MAX_META_BYTES:,} bytes"),
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_zip_bombs_are_refused_from_their_headers(good: Path, tmp_path: Path,
                                                  case: str) -> None:
    import time
    import tracemalloc
    import zipfile

    member, head, zeros, pattern = BOMBS[case]
    path = bomb_session(good, tmp_path / f"bomb-{case}.npz", member, head, zeros)
    with zipfile.ZipFile(path) as z:
        inflated = sum(info.file_size for info in z.infolist())
    assert path.stat().st_size < 10 * 2**20 and inflated > GIB  # a bomb: small, huge inside
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(BntuiError, match=pattern) as info:
            load_session(path)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.name in str(info.value) and "\n" not in str(info.value)
    assert peak < 20 * 2**20, f"{peak / 2**20:.1f} MiB"  # measured about 1 MiB
    assert seconds < 5, seconds  # measured about 0.05 s


def test_no_array_is_read_before_every_header_fits(good: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong shape in the last array: only 'meta' had its data read."""
    read: list[str] = []
    data = persist._Reader.data

    def spy(self: Any, archive: Any, name: str, *args: Any) -> np.ndarray:
        read.append(name)
        return data(self, archive, name, *args)

    monkeypatch.setattr(persist._Reader, "data", spy)
    load_session(good)
    assert read[0] == "meta" and len(read) == len(np.load(good).files)
    read.clear()
    path = rewrite(good, tmp_path / "late.npz",
                   arrays=lambda d: d.update({"batches/order": d["batches/order"][:, None]}))
    with pytest.raises(BntuiError, match="'batches/order' should be a 1-d integer array"):
        load_session(path)
    assert read == ["meta"]


@pytest.mark.parametrize("write", ["compressed", "fortran"])
def test_other_valid_npz_writings_load_exactly(good: Path, tmp_path: Path, write: str) -> None:
    """The headers are read as numpy writes them: a compressed archive, Fortran order."""
    with np.load(good, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    path = tmp_path / f"{write}.npz"
    if write == "compressed":
        np.savez_compressed(path, **data)
    else:
        data.update({k: np.asfortranarray(v) for k, v in data.items() if v.ndim == 2})
        np.savez(path, **data)
    assert_same(load_session(path), load_session(good))


def test_an_infinite_validation_loss_in_the_history_loads(good: Path, tmp_path: Path) -> None:
    """An evaluation of a diverging network may be infinite: history.val_loss keeps it."""
    path = rewrite(good, tmp_path / "inf.npz",
                   meta=lambda m: m["history"]["val_loss"].__setitem__(0, float("inf")))
    assert load_session(path).history.val_loss[0] == float("inf")


# whatever the bytes, a BntuiError or a session ------------------------------------------
@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "fuzz.npz"


def _load_or_bntui_error(path: Path) -> Session | None:
    try:
        return load_session(path)
    except BntuiError as exc:
        assert path.name in str(exc)
        return None


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_crash(scratch: Path, data: bytes) -> None:
    scratch.write_bytes(data)
    assert _load_or_bntui_error(scratch) is None


@FUZZ
@given(fraction=st.floats(0.0, 1.0))
def test_truncated_files_never_crash(good: Path, scratch: Path, fraction: float) -> None:
    whole = good.read_bytes()
    cut = int(len(whole) * fraction)
    scratch.write_bytes(whole[:cut])
    loaded = _load_or_bntui_error(scratch)
    assert (loaded is not None) == (cut == len(whole))


@FUZZ
@given(where=st.floats(0.0, 1.0, exclude_max=True), flip=st.integers(1, 255))
def test_corrupted_bytes_never_crash(good: Path, scratch: Path, where: float, flip: int) -> None:
    data = bytearray(good.read_bytes())
    i = int(len(data) * where)
    data[i] ^= flip
    scratch.write_bytes(bytes(data))
    _load_or_bntui_error(scratch)
