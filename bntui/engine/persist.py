"""Save a whole training session to one file and load it back, bit for bit.

Training N steps, saving, loading and training M more steps gives exactly the numbers
(every loss of the history, every parameter, running statistic and optimizer slot) of
N + M steps in one go, full batch or mini-batch, for every optimizer.

The file is one uncompressed NumPy ``.npz`` archive (``np.savez``; a zip of ``.npy``
members), readable with ``np.load(path, allow_pickle=False)``.  Its members:

``meta``
    a 0-d unicode array holding one JSON object::

        format         "bntui-session"                  (FORMAT)
        version        1                                (VERSION)
        bntui_version  the bntui that wrote the file    (informative only)
        config         the RunConfig as JSON; ``bn`` is a nested object, ``hyper`` a list
                       of [name, value] pairs (a ``bn`` without ``convention``, from
                       before conventions had names, loads as the convention whose
                       settings it has, else torch's with its settings overriding)
        dataset        n_train, n_val, n_features, n_classes, labels_sha256 (of the int64
                       little-endian train labels then validation labels) and csv_sha256
                       (of the CSV file's bytes, or null when the dataset is not a CSV)
        optimizer      name, hyper ({"lr": ..., "beta1": ...}: hyperparameters()), t
        history        History.to_dict(): step, loss, batch_accuracy, eval_step, ...,
                       eval_exact (absent from older files: every point read as exact)
        session        step_count, epoch, stopped (the last early-stop message or null)
        batches        rng_state (the mini-batch generator's bit_generator.state) and
                       cursor (the position in the current shuffled order)
        arrays         the names of every other member, in order

``network/<key>``
    ``Network.state()``: parameters ``1.W``, ``1.b``, ``1.gamma``, ``1.beta``, ...; the
    BatchNorm running statistics ``1.running_mean``, ``1.running_var``,
    ``1.running_std`` and the 0-d ``1.num_batches_tracked``
``optimizer/<param key>/<slot>``
    the optimizer's state, e.g. ``optimizer/1.W/m`` (none before the first step)
``batches/order``
    the current shuffled order of the training rows (empty for full batch)

Loading rebuilds the session with ``Session(config)`` (the dataset is regenerated from
the config's seed; a CSV dataset is read again from its path), checks that every array
fits the rebuilt network and that the dataset is the one the session was trained on,
then overwrites the state.  A file is untrusted bytes, and nothing is unpacked before it
is known to fit: ``meta`` is read only if it unpacks to at most ``MAX_META_BYTES`` or to
no more than it occupies in the file; then every array's ``.npy`` header — dtype (never
objects), shape, and the unpacked size the zip declares — is checked against the rebuilt
session before any array's data is read, so a small file that would inflate to
gigabytes (a zip bomb) costs a few headers.  Parameters, running statistics and
optimizer state holding NaN or an infinity are refused, as is a NaN or infinity in the
history but for ``val_loss`` (an evaluation of a diverging network may be infinite;
training records a step only when its loss is finite).

Saving is atomic: a temporary file in the same directory, flushed and fsync'ed, then
``os.replace``'d onto the target; an existing target is left untouched by a failed save.
Every problem raises :class:`BntuiError` with one line that names the file.  A file with
a higher ``version`` asks for a newer bntui.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import numpy as np

from bntui import __version__
from bntui.engine.config import RunConfig
from bntui.engine.conventions import infer
from bntui.engine.errors import BntuiError
from bntui.engine.files import write_atomic
from bntui.engine.network import BNOptions
from bntui.engine.optimizers import check_lr
from bntui.engine.session import History, Session

__all__ = ["FORMAT", "VERSION", "load_session", "save_session"]

FORMAT = "bntui-session"
VERSION = 1

META = "meta"
NETWORK = "network/"
OPTIMIZER = "optimizer/"
ORDER = "batches/order"
META_KEYS = ("format", "version", "config", "dataset", "optimizer", "history", "session",
             "batches", "arrays")
NPY_MAGIC = b"\x93NUMPY"
# The metadata is unpacked only up to this size from a compressed entry (bntui writes it
# stored, as long as the history makes it, costing no more than its share of the file).
MAX_META_BYTES = 64 * 2**20
CHUNK = 2**20  # bytes unpacked at a time
# Evaluations of a diverging network may give an infinite loss; training records a step
# only when its loss is finite, and accuracies are fractions.
NONFINITE_HISTORY = frozenset({"val_loss"})


# saving -------------------------------------------------------------------------------
def save_session(session: Session, path: str | os.PathLike[str]) -> Path:
    """Write `session` to `path` (exactly that name, atomically); returns the path."""
    target = Path(path)
    label = repr(os.fspath(path))
    arrays = _collect_arrays(session)
    meta = _collect_meta(session, list(arrays))
    try:
        text = json.dumps(meta, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise BntuiError(f"session file {label}: cannot encode the session: {exc}") from None
    payload: dict[str, np.ndarray] = {META: np.array(text), **arrays}

    write_atomic(target, lambda handle: np.savez(handle, **payload), "session file")
    return target


def _collect_arrays(session: Session) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for key, value in session.network.state().items():
        arrays[NETWORK + key] = np.asarray(value)
    for key, slots in session.optimizer.state.items():
        for slot, value in slots.items():
            arrays[f"{OPTIMIZER}{key}/{slot}"] = np.array(value)
    arrays[ORDER] = np.array(session.batch_state()[0])
    return arrays


def _collect_meta(session: Session, array_names: list[str]) -> dict[str, Any]:
    opt = session.optimizer
    ds = session.dataset
    return {
        "format": FORMAT,
        "version": VERSION,
        "bntui_version": __version__,
        "config": dataclasses.asdict(session.config),
        "dataset": {
            "n_train": ds.n_train, "n_val": ds.n_val, "n_features": ds.n_features,
            "n_classes": int(ds.n_classes),
            "labels_sha256": _labels_hash(ds.y_train, ds.y_val),
            "csv_sha256": _csv_hash(session.config.dataset),
        },
        "optimizer": {"name": opt.name, "hyper": opt.hyperparameters(), "t": int(opt.t)},
        "history": session.history.to_dict(),
        "session": {"step_count": int(session.step_count), "epoch": int(session.epoch),
                    "stopped": session.stopped},
        "batches": {"rng_state": session.batch_state()[2],
                    "cursor": int(session.batch_state()[1])},
        "arrays": array_names,
    }


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _labels_hash(y_train: np.ndarray, y_val: np.ndarray) -> str:
    h = hashlib.sha256()
    for y in (y_train, y_val):
        h.update(np.ascontiguousarray(y, dtype="<i8").tobytes())
    return h.hexdigest()


def _is_csv(dataset: str) -> bool:
    return dataset.lower().endswith(".csv")


def _csv_hash(dataset: str) -> str | None:
    if not _is_csv(dataset):
        return None
    try:
        return hashlib.sha256(Path(dataset).read_bytes()).hexdigest()
    except OSError:
        return None


def load_session(path: str | os.PathLike[str]) -> Session:
    """Read a file written by :func:`save_session` and rebuild its session.

    Nothing is unpacked before it is known to fit, so a small file that would inflate
    to gigabytes (a zip bomb) is refused at the cost of reading a few headers: the
    metadata's unpacked size is checked before it is read, its configuration rebuilds
    the session, every array's ``.npy`` header (dtype, shape, and the size the zip says
    the entry unpacks to) is checked against the rebuilt network, optimizer and dataset,
    and only then is any array's data read — each one refused if it holds NaN or an
    infinity."""
    reader = _Reader(repr(os.fspath(path)))
    with reader.open(Path(path)) as archive:
        members = reader.members(archive)
        meta = reader.header(reader.meta_text(archive, members[META]))
        listed = reader.array_names(meta, list(members))
        config = reader.config(reader.field(meta, "config", dict))
        session = reader.rebuild(config, reader.field(meta, "dataset", dict))
        heads = {name: reader.npy_header(archive, name, members[name]) for name in listed}
        reader.check_arrays(session, heads)  # every header before any array's data
        arrays = {name: reader.array(archive, name, members[name], heads[name])
                  for name in listed}
    reader.restore(session, meta, arrays)
    return session


class _NpyHeader(NamedTuple):
    """What a ``.npy`` entry's header says, and where its data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # bytes of magic and header before the data


class _Reader:
    """One load: every complaint names the file."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.size = 0  # the file's size in bytes

    def fail(self, what: str) -> NoReturn:
        raise BntuiError(f"session file {self.label}: {what}") from None

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Any failure reading the archive's bytes is a truncated or corrupted file."""
        try:
            yield
        except BntuiError:
            raise
        except Exception as exc:  # zipfile.BadZipFile (bad CRC), zlib.error, ValueError, ...
            self.fail(f"is truncated or corrupted: {type(exc).__name__}: {exc}")

    # the archive ---------------------------------------------------------------------
    def open(self, path: Path) -> zipfile.ZipFile:
        """The archive, open (only its central directory read)."""
        magic = b""
        try:
            if not path.exists():
                self.fail("not found")
            if path.is_dir():
                self.fail("is a directory, not a session file")
            self.size = path.stat().st_size
            if self.size == 0:
                self.fail("is empty (0 bytes)")
            with path.open("rb") as handle:
                magic = handle.read(len(NPY_MAGIC))
            if magic == NPY_MAGIC:
                self.fail("holds a single .npy array, not a bntui session archive")
            return zipfile.ZipFile(path)
        except BntuiError:
            raise
        except PermissionError:
            self.fail("cannot be read (permission denied)")
        except zipfile.BadZipFile as exc:
            if not magic.startswith(b"PK"):
                self.fail("is not a bntui session (not an .npz archive)")
            self.fail(f"is not a valid .npz archive (truncated or corrupted?): {exc}")
        except Exception as exc:  # untrusted bytes: any failure is a bad file
            self.fail(f"is not a valid .npz archive (truncated or corrupted?): "
                      f"{type(exc).__name__}: {exc}")

    def members(self, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
        """The entries by array name (``network/1.W`` for ``network/1.W.npy``)."""
        infos = archive.infolist()
        if META + ".npy" not in {info.filename for info in infos}:
            self.fail(f"is not a bntui session (an .npz archive without {META!r})")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            entry = info.filename
            if not entry.endswith(".npy"):
                self.fail(f"has an entry {entry!r} that is not a .npy array")
            if entry[:-4] in members:
                self.fail(f"has two entries named {entry!r}")
            if info.header_offset + info.compress_size > self.size:
                self.fail(f"is truncated (its entry {entry!r} runs past the end of the file)")
            members[entry[:-4]] = info
        return members

    def meta_text(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
        """The JSON text of 'meta', its size bounded before a byte of it is unpacked."""
        size, packed = info.file_size, info.compress_size
        if size > max(MAX_META_BYTES, packed):
            self.fail(f"its {META!r} would inflate from {packed:,} to {size:,} bytes; at most "
                      f"{MAX_META_BYTES:,} bytes of metadata are unpacked from a compressed "
                      "entry")
        head = self.npy_header(archive, META, info)
        if head.dtype.kind != "U" or head.shape != () or head.dtype.itemsize == 0:
            self.fail(f"is not a bntui session (its {META!r} is not a JSON string)")
        return str(self.data(archive, META, info, head)[()])

    def npy_header(self, archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo
                   ) -> _NpyHeader:
        """The header of entry `name` (a few hundred bytes unpacked), checked against the
        size the zip says the entry unpacks to."""
        with self.reading(), archive.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                self.fail(f"array {name!r} is a .npy of format {version[0]}.{version[1]}, "
                          "which bntui does not read")
            offset = fp.tell()
        if dtype.hasobject:
            self.fail(f"array {name!r} holds Python objects (dtype {dtype}), which a session "
                      "never does")
        if any(n < 0 for n in shape):
            self.fail(f"array {name!r} has a negative dimension in its shape {shape}")
        described = offset + math.prod(shape) * dtype.itemsize
        if info.file_size != described:
            self.fail(f"array {name!r} unpacks to {info.file_size:,} bytes, but its header "
                      f"describes {described:,} ({dtype} of shape {shape})")
        return _NpyHeader(tuple(shape), dtype, bool(fortran), offset)

    def data(self, archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo,
             head: _NpyHeader) -> np.ndarray:
        """The array of entry `name`, whose header `head` was checked: unpacked in chunks
        into one buffer of exactly its size (the zip checks the CRC at the end)."""
        raw = np.empty(info.file_size - head.offset, dtype=np.uint8)
        view = memoryview(raw)
        with self.reading(), archive.open(info) as fp:
            if len(fp.read(head.offset)) != head.offset:
                raise EOFError(f"{name!r} ends in its header")
            done = 0
            while done < raw.size:
                got = fp.readinto(view[done:done + CHUNK])
                if not got:
                    raise EOFError(f"{name!r} ends after {done:,} of {raw.size:,} bytes")
                done += got
        return raw.view(head.dtype).reshape(head.shape, order="F" if head.fortran else "C")

    def array(self, archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo,
              head: _NpyHeader) -> np.ndarray:
        """The data of a checked entry; NaN or infinite values are refused."""
        value = self.data(archive, name, info, head)
        if value.dtype.kind in "fc":
            for bad, word in ((np.isnan, "NaN"), (np.isinf, "an infinite value")):
                if bad(value).any():
                    self.fail(f"{_describe(name)} holds {word} (array {name!r})")
        return value

    def header(self, text: str) -> dict[str, Any]:
        try:
            meta = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self.fail(f"has broken metadata (not valid JSON: {exc})")
        if not isinstance(meta, dict):
            self.fail("has broken metadata (not a JSON object)")
        fmt = meta.get("format")
        if fmt != FORMAT:
            self.fail(f"is not a bntui session (format {fmt!r}, expected {FORMAT!r})")
        version = meta.get("version")
        if not _is_int(version) or version < 1:
            self.fail(f"has broken metadata (version {version!r} is not a positive integer)")
        if version > VERSION:
            self.fail(f"version {version} is newer than this bntui understands ({VERSION}); "
                      "upgrade bntui")
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            self.fail(f"has broken metadata (missing {', '.join(map(repr, missing))})")
        return meta

    def array_names(self, meta: dict[str, Any], names: list[str]) -> list[str]:
        listed = self.field(meta, "arrays", list)
        if not all(isinstance(n, str) for n in listed) or len(set(listed)) != len(listed):
            self.fail("has broken metadata ('arrays' is not a list of distinct names)")
        present = set(names) - {META}
        missing = [n for n in listed if n not in present]
        if missing:
            self.fail(f"is missing array {missing[0]!r}")
        extra = sorted(present - set(listed))
        if extra:
            self.fail(f"has an unexpected array {extra[0]!r}")
        return listed

    # metadata fields -----------------------------------------------------------------
    def field(self, obj: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
        if key not in obj:
            self.fail(f"has broken metadata (missing '{where}{key}')")
        value = obj[key]
        ok = _is_int(value) if kind is int else (
            _is_number(value) if kind is float else isinstance(value, kind))
        if not ok:
            self.fail(f"has broken metadata ('{where}{key}' should be {_kind_name(kind)}, "
                      f"not {_json_name(value)})")
        return value

    def count(self, obj: dict[str, Any], key: str, where: str) -> int:
        value = self.field(obj, key, int, where)
        if value < 0:
            self.fail(f"has broken metadata ('{where}{key}' is negative: {value})")
        return int(value)

    def config(self, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(RunConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            self.fail(f"has an unknown configuration field {unknown[0]!r}")
        values = dict(data)
        bn = values.pop("bn", {})
        if not isinstance(bn, dict):
            self.fail("has broken metadata ('config.bn' should be an object)")
        bn_known = {f.name for f in dataclasses.fields(BNOptions)}
        bn_unknown = sorted(set(bn) - bn_known)
        if bn_unknown:
            self.fail(f"has an unknown BatchNorm option {bn_unknown[0]!r}")
        if "convention" not in bn:  # saved before conventions had names: the one it is
            bn["convention"] = infer(BNOptions(**bn).settings())
        hyper = values.pop("hyper", [])
        pairs = []
        if not isinstance(hyper, list):
            self.fail("has broken metadata ('config.hyper' should be a list of pairs)")
        for pair in hyper:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                    and _is_number(pair[1])):
                self.fail(f"has broken metadata (config.hyper entry {pair!r} is not a "
                          "[name, number] pair)")
            pairs.append((pair[0], pair[1]))
        return RunConfig(**values, bn=BNOptions(**bn), hyper=tuple(pairs))

    # the session ---------------------------------------------------------------------
    def rebuild(self, config: RunConfig, saved: dict[str, Any]) -> Session:
        if _is_csv(config.dataset) and not Path(config.dataset).is_file():
            self.fail(f"its dataset, CSV file {config.dataset!r}, is gone (expected at "
                      f"'{os.path.abspath(config.dataset)}'); put it back to load the session")
        try:
            session = Session(config)
        except BntuiError as exc:
            self.fail(f"cannot rebuild the session from its configuration: {exc}")
        except Exception as exc:  # a configuration with values of the wrong type
            self.fail(f"has a broken configuration: {type(exc).__name__}: {exc}")
        ds = session.dataset
        for key, now in (("n_train", ds.n_train), ("n_val", ds.n_val),
                         ("n_features", ds.n_features), ("n_classes", int(ds.n_classes))):
            was = self.count(saved, key, "dataset.")
            if was != now:
                self.fail(f"the dataset rebuilt from its configuration has {key} {now}, but "
                          f"the session was trained with {was}")
        labels = self.field(saved, "labels_sha256", str, "dataset.")
        if labels != _labels_hash(ds.y_train, ds.y_val):
            self.fail("the dataset rebuilt from its configuration is not the one the "
                      "session was trained on (its labels differ)")
        csv_hash = saved.get("csv_sha256")
        if csv_hash is not None and csv_hash != _csv_hash(config.dataset):
            self.fail(f"CSV file {config.dataset!r} changed since the session was saved")
        return session

    def check_arrays(self, session: Session, heads: dict[str, _NpyHeader]) -> None:
        """Every array's dtype and shape against the rebuilt session, from the headers
        alone: with the sizes `npy_header` checked, the archive unpacks to no more than
        the session's own arrays (each parameter at most once per optimizer slot)."""
        net, opt = session.network, session.optimizer
        params = net.params()
        expected = {**params, **net.running_state()}
        for key in expected:
            if NETWORK + key not in heads:
                self.fail(f"has no array {NETWORK + key!r}, which the network needs")
        if ORDER not in heads:
            self.fail(f"has no array {ORDER!r}")
        for name, head in heads.items():
            if name == ORDER:
                self.check_order(session, head)
            elif name.startswith(NETWORK):
                key = name[len(NETWORK):]
                if key not in expected:
                    self.fail(f"has an array {name!r} that the network does not have")
                self.check_fits(name, head, expected[key])
            elif name.startswith(OPTIMIZER):
                key, _, slot = name[len(OPTIMIZER):].partition("/")
                if key not in params or not slot:
                    self.fail(f"has an optimizer array {name!r} for no parameter of the "
                              "network")
                if slot not in opt.slots:
                    self.fail(f"has an optimizer array {name!r}, but {opt.name} keeps "
                              f"{_slot_names(opt.slots)}")
                self.check_fits(name, head, params[key])
            else:
                self.fail(f"has an unexpected array {name!r}")

    def check_fits(self, name: str, head: _NpyHeader, like: np.ndarray) -> None:
        if head.shape != like.shape:
            self.fail(f"array {name!r} has shape {head.shape}, but the network rebuilt from "
                      f"its configuration needs {like.shape}")
        if head.dtype != like.dtype:
            self.fail(f"array {name!r} has dtype {head.dtype}, but the network rebuilt from "
                      f"its configuration needs {like.dtype}")

    def check_order(self, session: Session, head: _NpyHeader) -> None:
        if len(head.shape) != 1 or head.dtype.kind not in "iu":
            self.fail(f"array {ORDER!r} should be a 1-d integer array, not "
                      f"{head.dtype} of shape {head.shape}")
        n = session.dataset.n_train
        if head.shape[0] not in (0, n):
            self.fail(f"array {ORDER!r} holds {head.shape[0]} positions, but a shuffled order "
                      f"of the {n} training rows holds {n} (or none, before the first batch)")

    def restore(
        self, session: Session, meta: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> None:
        net_state = {n[len(NETWORK):]: a for n, a in arrays.items() if n.startswith(NETWORK)}
        opt_state: dict[str, dict[str, np.ndarray]] = {}
        for name, value in arrays.items():
            if name.startswith(OPTIMIZER):
                key, _, slot = name[len(OPTIMIZER):].partition("/")
                opt_state.setdefault(key, {})[slot] = np.ascontiguousarray(value)
        opt_meta = self.field(meta, "optimizer", dict)
        history = self.history(self.field(meta, "history", dict))
        counters = self.field(meta, "session", dict)
        step_count = self.count(counters, "step_count", "session.")
        epoch = self.count(counters, "epoch", "session.")
        stopped = counters.get("stopped")
        if stopped is not None and not isinstance(stopped, str):
            self.fail("has broken metadata ('session.stopped' should be text or null)")
        batches = self.field(meta, "batches", dict)
        cursor = self.count(batches, "cursor", "batches.")
        rng_state = self.field(batches, "rng_state", dict, "batches.")
        order = self.order(session, arrays[ORDER], cursor)

        opt = session.optimizer
        name = self.field(opt_meta, "name", str, "optimizer.")
        if name != opt.name:
            self.fail(f"its optimizer is {name!r} but its configuration builds {opt.name!r}")
        t = self.count(opt_meta, "t", "optimizer.")
        hyper = self.field(opt_meta, "hyper", dict, "optimizer.")
        expected = set(opt.hyperparameters())
        if set(hyper) != expected:
            self.fail(f"its {name} hyper-parameters are {sorted(hyper)}, expected "
                      f"{sorted(expected)}")
        for key, value in hyper.items():
            if not _is_finite(value):
                self.fail(f"{name} {key} {_short(value)} is not a finite number")
        try:
            opt.lr = check_lr(hyper["lr"])
        except BntuiError as exc:
            self.fail(str(exc))

        try:
            session.restore_batches(order, cursor, rng_state)
        except Exception as exc:  # TypeError, ValueError, KeyError, OverflowError, ...
            self.fail(f"has a broken mini-batch generator state: {type(exc).__name__}: {exc}")
        session.network.load_state(net_state)
        for key, value in hyper.items():
            if key != "lr":
                setattr(opt, key, value)
        opt.t = t
        opt.state = opt_state
        session.history = history
        session.step_count = step_count
        session.epoch = epoch
        session.stopped = stopped

    def order(self, session: Session, order: np.ndarray, cursor: int) -> np.ndarray:
        """The mini-batch order (its dtype and shape checked by `check_order`)."""
        n = session.dataset.n_train
        if order.size and (int(order.min()) < 0 or int(order.max()) >= n):
            self.fail(f"array {ORDER!r} points outside the {n} training rows")
        if cursor > order.size:
            self.fail(f"has broken metadata (batch cursor {cursor} is past the order's "
                      f"{order.size} rows)")
        return np.array(order, dtype=np.int64)

    def history(self, data: dict[str, Any]) -> History:
        known = {f.name for f in dataclasses.fields(History)}
        unknown = sorted(set(data) - known)
        if unknown:
            self.fail(f"has an unknown history field {unknown[0]!r}")
        for key, values in data.items():
            if key == "eval_exact":  # true/false; absent from files written before it
                if not isinstance(values, list) or not all(isinstance(v, bool) for v in values):
                    self.fail("has broken metadata (history.eval_exact should be a list of "
                              "true/false)")
            elif not isinstance(values, list) or not all(
                v is None or _is_number(v) for v in values
            ):
                self.fail(f"has broken metadata (history.{key} should be a list of numbers)")
            elif key not in NONFINITE_HISTORY:
                bad = next((i for i, v in enumerate(values)
                            if v is not None and not _is_finite(v)), None)
                if bad is not None:
                    self.fail(f"has broken metadata (history.{key} holds {_short(values[bad])} at "
                              f"entry {bad}; training records only finite values there)")
        return History(**{k: list(v) for k, v in data.items()})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: object) -> bool:
    """A JSON number that is a finite float (10**400 is not: no float holds it)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _short(value: object, width: int = 24) -> str:
    """`value`'s repr, cut when long (a JSON integer may have thousands of digits)."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width // 2]}… ({len(text)} characters)"


def _describe(name: str) -> str:
    """An array in words: ``network/1.gamma`` is layer 1's gamma."""
    if name.startswith(NETWORK):
        layer, _, what = name[len(NETWORK):].partition(".")
        return f"layer {layer}'s {what}"
    if name.startswith(OPTIMIZER):
        key, _, slot = name[len(OPTIMIZER):].partition("/")
        return f"the optimizer's {slot} for {_describe(NETWORK + key)}"
    return f"array {name!r}"


def _slot_names(slots: tuple[str, ...]) -> str:
    return ("no state" if not slots else
            "only " + " and ".join(repr(s) for s in slots))


def _kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "text", dict: "an object",
            list: "a list"}.get(kind, kind.__name__)


def _json_name(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "text",
            dict: "an object", list: "a list"}.get(type(value), type(value).__name__)
