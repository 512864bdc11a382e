"""Random command lines: every one ends in a result (exit 0), a stopped run (exit 1) or
one clear line on stderr (exit 2) — never a traceback, and never a NaN shown as a result
without a warning."""

from __future__ import annotations

import contextlib
import io
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bntui.cli import main

VALUES = {
    "--dataset": ["moons", "xor", "iris", "seed-toy", "blobs", "moon", "", "x.csv", "spiral"],
    "--arch": ["4:relu,C", "3:tanh:nobn,C:nobn", "C", "4:relu", "0,C", "4:sigmod,C",
               "2:elu=0.5,C", "4,,C", "leaky_relu=1", "5:leaky_relu(0.2):nobias,C"],
    "--optimizer": ["sgd", "adam", "rmsprop", "adagrad", "momentum", "nesterov", "adamw", ""],
    "--lr": ["0.1", "1e-3", "-1", "0", "nan", "inf", "abc", "1e6", "1e300"],
    "--batch-size": ["1", "2", "16", "0", "-3", "x", "100000"],
    "--samples": ["4", "40", "3", "-1", "abc"],
    "--noise": ["0", "0.3", "-0.1", "nan"],
    "--seed": ["0", "7", "-1", "x"],
    "--bn-eps": ["0", "1e-5", "-1", "inf"],
    "--bn-momentum": ["0.1", "1", "2", "-1"],
    "--val-fraction": ["0", "0.5", "1", "-0.2"],
    "--momentum": ["0.9", "1.5", "x"],
    "--preset": ["seed-softmax", "nope"],
}
COMMANDS = ["train", "gradcheck", "walk"]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    cmd = draw(st.sampled_from(COMMANDS))
    flags = draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=4, unique=True))
    argv = [cmd]
    for f in flags:
        argv += [f, draw(st.sampled_from(VALUES[f]))]
    if draw(st.booleans()):
        argv.append("--json")
    steps = draw(st.sampled_from(["3", "0", "-2", "x"]))
    return [*argv, "--steps", steps]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command_lines())
def test_random_command_lines(argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)  # any exception escaping here fails the test
    assert code in (0, 1, 2), (argv, code)
    text, msg = out.getvalue(), err.getvalue()
    assert "Traceback" not in msg
    if code == 2:
        assert len(msg.strip().splitlines()) == 1, (argv, msg)
        assert text == ""
    if code == 0 and "--json" in argv:
        data = json.loads(text)
        for key in ("final_loss", "loss"):
            if key in data:
                assert math.isfinite(data[key]), (argv, data[key])
    if code == 1:  # a diverged run or a --tol failure says why
        assert msg.strip()
