"""Nothing a user types can hurt them (issue 13): memory, paths, numbers, the flags the app
and `serve` take — through the real command line (a subprocess), with exit status and
exactly one line on stderr, and without allocating the memory a refused run would need."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bntui.cli import main
from bntui.engine import budget

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

# run a command in a child and report its exit status, seconds and peak memory (KiB)
MEASURED = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run([sys.executable, "-m", "bntui", *sys.argv[1:]], capture_output=True,
                      text=True, stdin=subprocess.DEVNULL)
print(json.dumps({"code": done.returncode, "seconds": time.perf_counter() - start,
                  "kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "out": done.stdout, "err": done.stderr}))
"""


def measured(*argv: str, timeout: float = 120) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURED, *argv], capture_output=True,
                          text=True, env=ENV, timeout=timeout)
    return json.loads(done.stdout)


def cli(*argv: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bntui", *argv], capture_output=True,
                          text=True, env=ENV, timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "Warning" not in err, err
    return lines[0]


def unwarned(err: str) -> str:
    """stderr without the warning a slower machine prints about a slow step."""
    return "\n".join(line for line in err.splitlines() if ": warning: " not in line)


# memory and size -------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
@pytest.mark.parametrize("command", ["train", "gradcheck", "walk"])
def test_a_network_that_cannot_fit_is_refused_before_it_is_allocated(command: str) -> None:
    """Two widths of 100,000: 10 G parameters, ~600 GiB. One line that says how much it
    would take and what the machine has, in the memory of an empty run."""
    r = measured(command, "--arch", "100000,100000,C")
    assert r["code"] == 2, r
    line = one_line(r["err"])
    assert line.startswith(f"bntui {command}: error: the network 2 → 100000 → 100000 → 2 "
                           "has 10.0 G parameters and needs about "), line
    assert "GiB of memory to train; this machine has" in line and "available" in line
    assert r["kib"] < 300 * 1024, r["kib"]  # an empty run: about 45 MB
    assert r["out"] == ""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
@pytest.mark.parametrize("command", [["train", "--steps", "2"],
                                     ["gradcheck", "--no-numeric", "--no-autograd"]])
def test_the_memory_estimate_is_close_to_what_the_run_really_takes(command: list[str]) -> None:
    """The estimate against the peak memory of a real run (independent: the kernel's
    count), for a network whose parameters and batch dominate: within a factor of 1.6."""
    arch = "1500,1500,C"
    base = measured(*command, "--arch", "4,C")
    big = measured(*command, "--arch", arch, "--dataset", "digits")
    assert base["code"] == 0 and big["code"] == 0, (base, big)
    used = (big["kib"] - base["kib"]) * 1024
    tensors = budget.TRAIN_TENSORS if command[0] == "train" else budget.TRACE_TENSORS
    est = budget.estimate(arch, 64, 10, 1437, dtype="float64", optimizer_slots=2,
                          tensors=tensors)
    # W, then bias, gamma and beta of every unit
    assert est.params == 64 * 1500 + 1500 * 1500 + 1500 * 10 + 3 * (1500 + 1500 + 10)
    assert used / 1.6 < est.bytes < used * 1.6, (used, est.bytes)


def test_a_very_slow_configuration_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine measured a million times slower than this one: one step of a small
    network is 'very slow', and `train` says so on one line before it trains."""
    monkeypatch.setattr(budget, "flops_per_second", lambda dtype="float64": 1e3)
    monkeypatch.setattr(budget, "SMALL_FLOPS", 0.0)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", "--steps", "1", "--arch", "8,C"])
    assert code == 0
    line = one_line(err.getvalue())
    assert line.startswith("bntui train: warning: the network 2 → 8 → 2 has 62 parameters")
    assert "one training step takes about" in line and line.endswith("(Ctrl-C stops)")


def test_the_numerical_check_of_a_big_network_is_warned_about() -> None:
    est = budget.estimate("2000,2000,C", 64, 10, 1437)
    assert est.check_seconds is not None and est.check_seconds > budget.VERY_SLOW_CHECK
    warning = est.warning(check=True)
    assert warning is not None and "--no-numeric skips it" in warning
    assert budget.estimate("16,16,C", 2, 2, 160).warning(check=True) is None


@pytest.mark.parametrize("argv", [
    ["lab", "health", "--bins", "1000000000"],
    ["lab", "exercise", "--count", "100000000"],
])
def test_lab_sizes_have_a_ceiling(argv: list[str]) -> None:
    r = cli(*argv, timeout=60)
    assert r.returncode == 2
    assert "must be at most" in one_line(r.stderr)


# Ctrl-C ------------------------------------------------------------------------------------
SLOW = ("2500,2500,2500,C", "--dataset", "digits", "--steps", "1000")  # ~3 s a step
SLOWER = ("5000,5000,5000,C", "--dataset", "digits", "--steps", "1000")  # ~12 s a step


def interrupted(*flags: str) -> tuple[float, tuple[str, str], subprocess.Popen[str]]:
    """`bntui train FLAGS`, sent Ctrl-C after 4 s: (when it was sent, (stdout, stderr),
    the process)."""
    proc = subprocess.Popen([sys.executable, "-m", "bntui", "train", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, stdin=subprocess.DEVNULL)
    time.sleep(4.0)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    return t0, proc.communicate(timeout=30), proc


def test_ctrl_c_is_prompt_in_the_middle_of_a_long_step() -> None:
    """Steps of about 3 s each (three widths of 2,500 on 1,437 rows): Ctrl-C ends the
    process within a second or two, with one line and status 130."""
    t0, (_out, err), proc = interrupted("--arch", *SLOW)
    assert time.perf_counter() - t0 < 3.0
    assert proc.returncode == 130
    assert one_line(unwarned(err)) == "bntui train: interrupted"


def test_ctrl_c_during_train_save_saves_what_was_trained(tmp_path: Path) -> None:
    from bntui.engine.persist import load_session

    path = tmp_path / "run.npz"
    _, (out, err), proc = interrupted("--steps", "100000000", "--save", str(path))
    assert proc.returncode == 130
    line = one_line(err)
    assert line.startswith("bntui train: interrupted after ") and "written above" in line
    steps = int(line.split("after ")[1].split()[0])
    assert steps > 0
    session = load_session(path)
    assert session.step_count == steps
    assert f"saved      {path}" in out


def test_ctrl_c_in_a_step_that_does_not_end_says_nothing_was_saved(tmp_path: Path) -> None:
    path = tmp_path / "run.npz"
    t0, (_out, err), proc = interrupted("--arch", *SLOWER, "--save", str(path))
    assert time.perf_counter() - t0 < 6.0
    assert proc.returncode == 130
    assert one_line(unwarned(err)) == ("bntui train: interrupted in the middle of a step: "
                                       "nothing was saved")
    assert not path.exists()


# paths -------------------------------------------------------------------------------------
def test_an_output_path_is_checked_before_training(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    r = cli("train", "--steps", "100000000", "--save", "/nonexistent/dir/x.npz")
    assert time.perf_counter() - t0 < 20  # not after 10⁸ steps
    assert r.returncode == 2
    assert one_line(r.stderr) == ("bntui train: error: session file '/nonexistent/dir/x.npz': "
                                  "cannot write: directory '/nonexistent/dir' does not exist")
    r = cli("train", "--steps", "100000000", "--export-torch", str(tmp_path))
    assert r.returncode == 2 and "it is a directory" in one_line(r.stderr)


def test_export_torch_without_torch_is_refused_before_training(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['torch'] = None; from bntui.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "train", "--steps", "100000000",
                        "--export-torch", str(tmp_path / "m.pt")], capture_output=True,
                       text=True, env=ENV, timeout=60)
    assert r.returncode == 2
    assert "torch" in one_line(r.stderr) and r.stdout == ""


@pytest.mark.parametrize("argv", [
    ["train", "--save", ""], ["train", "--load", ""], ["train", "--load", "  "],
    ["train", "--export-torch", ""], ["walk", "--output", ""],
])
def test_an_empty_file_name_is_refused(argv: list[str]) -> None:
    r = cli(*argv, "--steps", "1")
    assert r.returncode == 2
    assert "must name a file (got an empty name)" in one_line(r.stderr)
    assert r.stdout == ""


def _as_nobody(argv: list[str]) -> tuple[int, str, str]:
    """`main(argv)` in a forked child that dropped to the user nobody: the permissions of
    an ordinary user, with the modules already imported (this interpreter's own files
    may be unreadable to nobody)."""
    import bntui.cli.commands
    import bntui.engine.persist
    import bntui.handout  # noqa: F401  (walk's md output, imported before the fork)

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
            os.write(write, json.dumps([code, out.getvalue(), err.getvalue()]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    code, out, err = json.loads(data)
    return code, out, err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
@pytest.mark.parametrize("argv", [["train", "--steps", "2", "--save"],
                                  ["walk", "--output"]])
def test_a_folder_without_permission_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    """As an ordinary user (nobody): a folder it may not enter, and one it may not write
    to, each one line before the work."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own folder is root's alone
    os.chmod(base, 0o755)
    closed = base / "closed"
    closed.mkdir(mode=0o700)
    readonly = base / "readonly"
    readonly.mkdir(mode=0o555)
    try:
        for target, why in ((closed / "sub" / "x.npz", "is not readable"),
                            (readonly / "x.npz", "is not writable")):
            code, out, err = _as_nobody([*argv, str(target)])
            assert code == 2, err
            line = one_line(err)
            assert "cannot write" in line and why in line, line
            assert out == ""
    finally:
        shutil.rmtree(base)


def test_a_device_is_written_as_a_stream_not_replaced(tmp_path: Path) -> None:
    """/dev/null stays a device; /dev/full (a full disk) keeps the trained session in a
    file of its own and says where."""
    r = cli("train", "--steps", "3", "--save", "/dev/null")
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    if not os.path.exists("/dev/full"):
        return
    r = cli("train", "--steps", "3", "--save", "/dev/full")
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "session file '/dev/full': cannot write: No space left on device" in line
    rescue = line.split("saved to ")[1].split(" instead")[0]
    from bntui.engine.persist import load_session

    assert load_session(rescue).step_count == 3
    os.unlink(rescue)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_named_pipe_is_written_as_a_stream(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = cli("walk", "--format", "md", "--output", str(fifo))
    reader.join(30)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got and got[0].startswith(b"#")


def test_a_symlink_stays_a_link(tmp_path: Path) -> None:
    target = tmp_path / "real.md"
    target.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    assert cli("walk", "--format", "md", "--output", str(link)).returncode == 0
    assert link.is_symlink() and target.read_text().startswith("#")


# numbers -----------------------------------------------------------------------------------
def test_infinite_running_statistics_are_a_divergence(tmp_path: Path) -> None:
    """lr 1e300: the loss stays finite (BatchNorm divides the huge weights away) but the
    running variance overflows: exit 1, one line, and what is saved is finite."""
    from bntui.engine.persist import load_session

    path = tmp_path / "x.npz"
    r = cli("train", "--preset", "seed-softmax", "--lr", "1e300", "--steps", "50", "--json",
            "--save", str(path))
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert "running_var became infinite or NaN" in line
    data = json.loads(r.stdout)
    assert data["stopped"] and data["steps"] < 50
    session = load_session(path)
    assert session.network.nonfinite() is None and session.optimizer.nonfinite() is None


@pytest.mark.parametrize("command", ["gradcheck", "walk"])
def test_a_divergence_before_a_check_exits_1(command: str) -> None:
    r = cli(command, "--preset", "seed-softmax", "--lr", "1e300", "--steps", "30")
    assert r.returncode == 1
    assert "became infinite or NaN" in one_line(r.stderr)


def test_no_runtime_warning_reaches_stderr() -> None:
    r = cli("train", "--arch", "8:nobn:relu,C:nobn", "--lr", "1e200", "--optimizer", "sgd",
            "--steps", "20", "--json")
    assert r.returncode == 1
    assert "the loss became" in one_line(r.stderr)
    json.loads(r.stdout)  # JSON, not a bare NaN


def test_gradcheck_tol_fails_when_the_error_is_not_a_number(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bntui.engine.gradcheck import GradcheckReport

    real = GradcheckReport.max_rel_error
    monkeypatch.setattr(GradcheckReport, "max_rel_error", lambda self: {
        **real(self), "analytic_vs_numeric": float("nan")})
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["gradcheck", "--tol", "1e-6", "--no-autograd"])
    assert code == 1
    assert "exceeds --tol" in one_line(err.getvalue())


def test_a_huge_slope_is_refused() -> None:
    r = cli("train", "--arch", "4:leaky_relu=1e308,C")
    assert r.returncode == 2
    assert "α of leaky_relu must be between 0 and 1000" in one_line(r.stderr)


# flags the app and serve take ----------------------------------------------------------------
@pytest.mark.parametrize("flags", [
    ["--arch", "32:sigmod,C"], ["--dataset", "nosuch"], ["--optimizer", "nosuch"],
    ["--batch-size", "1"], ["--bn-momentum", "5"], ["--dataset", "/nonexistent.csv"],
    ["--arch", "100000,100000,C"],
])
@pytest.mark.parametrize("command", [[], ["serve", "--port", "59173"]])
def test_a_wrong_flag_stops_the_app_and_serve_before_they_start(
        command: list[str], flags: list[str]) -> None:
    r = cli(*command, *flags, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = one_line(r.stderr)
    assert line.startswith("bntui serve: error:" if command else "bntui: error:")
    assert "open http" not in r.stdout and "\x1b[" not in r.stdout + r.stderr


# a fuzz over hostile flags and files -------------------------------------------------------
HOSTILE = {
    "--arch": ["100000,100000,C", "4:leaky_relu=1e308,C", "99999999999,C", "4:relu,C",
               "4:elu=nan,C", "", " ", "C,C", "4:" + "x" * 5000],
    "--lr": ["1e300", "1e-320", "nan", "-0", "1e309"],
    "--batch-size": ["1", "100000000000000000000"],
    "--steps": ["0", "3", "1e3", "-5"],  # (a huge count is a long run, not bad input)
    "--samples": ["1000000000", "5"],
    "--classes": ["1000000", "3"],
    "--dataset": ["", "/dev/null", "/", "blobs", "/nonexistent.csv", "x" * 5000],
    "--seed": ["1" * 40, "3"],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("hostile")
    (d / "empty.csv").write_text("")
    (d / "bom.csv").write_bytes(b"\xef\xbb\xbfa,b,label\r\n1,2,x\r\n3,4,y\r\n5,6,x\r\n7,8,y\r\n")
    (d / "numeric_header.csv").write_text(
        "0,1,label\n" + "".join(f"{i},{i % 3},{'ab'[i % 2]}\n" for i in range(20)))
    (d / "latin1.csv").write_bytes(b"a,b,c\n1,2,\xe9\n3,4,\xe8\n")
    (d / "garbage.npz").write_bytes(os.urandom(512))
    (d / "dir.csv").mkdir()
    return {name: str(d / name) for name in ("empty.csv", "bom.csv", "numeric_header.csv",
                                             "latin1.csv", "garbage.npz", "dir.csv")}


def test_hostile_flags_and_files_fuzz(files: dict[str, str]) -> None:
    """Random mixes of hostile values, files and output paths through the command line's
    main: exit 0, 1 or 2, never a traceback, and a refusal is exactly one stderr line."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    outputs = ["", "/nonexistent/dir/x", "/dev/null", files["dir.csv"], "/proc/version"]
    values = {**HOSTILE, "--dataset": [*HOSTILE["--dataset"], *files.values()]}

    @st.composite
    def lines(draw: st.DrawFn) -> list[str]:
        cmd = draw(st.sampled_from(["train", "gradcheck", "walk", "lab health"]))
        argv = cmd.split()
        for flag in draw(st.lists(st.sampled_from(sorted(values)), max_size=3, unique=True)):
            argv += [flag, draw(st.sampled_from(values[flag]))]
        if "--steps" not in argv:
            argv += ["--steps", "2"]
        if cmd == "train" and draw(st.booleans()):
            argv += [draw(st.sampled_from(["--save", "--load", "--export-torch"])),
                     draw(st.sampled_from([*outputs, files["garbage.npz"]]))]
        if cmd == "walk" and draw(st.booleans()):
            argv += ["--output", draw(st.sampled_from(outputs))]
        return argv

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(lines())
    def run(argv: list[str]) -> None:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        msg = err.getvalue()
        assert code in (0, 1, 2), (argv, code, msg)
        assert "Traceback" not in msg and "Warning:" not in msg, (argv, msg)
        if code == 2:
            assert len(msg.strip().splitlines()) == 1, (argv, msg)
        if code == 1:
            assert msg.strip(), argv

    run()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
