"""The bug zoo against the engine: every bug's gradient check fails exactly where the test
says it must (a set written out here, not read from the lab) and nowhere else, the correct
engine passes everywhere, and each bug does to training what its explanation says.

Independent references: numerical gradients of the bugged forward, the seeds' own code
transcribed, hand-computed identities (Σ Zbn = m·β, p(1−p)·dBCE/dp = p − y), PyTorch."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest

from bntui.cli import main
from bntui.engine.batchnorm import BatchNorm
from bntui.engine.jsonable import dumps
from bntui.engine.labs import bugs as zoo
from bntui.engine.loss import SoftmaxCrossEntropy
from bntui.engine.optimizers import Adam
from bntui.engine.session import Session

BN_NAMES = ("dZbn", "dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ", "dW", "dX")
TOP = {(2, n) for n in BN_NAMES}  # the output block (2 → 16 BN tanh → 3 BN)
BOTTOM = {(1, n) for n in ("dA", *BN_NAMES)}
ALL = TOP | BOTTOM


def top(*names: str) -> set[tuple[int, str]]:
    return {(2, n) for n in names}


# what each bug must break in the scenario's network, written out by hand
EXPECTED: dict[str, set[tuple[int, str]]] = {
    "running-stats-in-training": top("dZ0", "dmu", "dZ", "dW", "dX") | BOTTOM,
    "adam-no-step": set(),
    "softmax-diag-bce": ALL,
    "dbeta-sum-zbn": {(1, "dbeta"), (2, "dbeta")},
    "no-max-shift": set(),
    "missing-1-over-m": ALL,
    "eps-outside-sqrt": top("dvar", "dZ0", "dZ", "dW", "dX") | BOTTOM,
    "var-unbiased-mixup": top("dZ0", "dZ", "dW", "dX") | BOTTOM,
    "bias-before-bn": set(),
}


# the normalization family's bugs: 2 → 16 (LN | GN | RMS) tanh → 3 BN, a bias on block 1
LN_NAMES = ("dA", "dZln", "dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ", "dW",
            "db", "dX")
GN_NAMES = ("dA", "dZgn", "dbeta", "dgamma", "dZnorm", "dstd", "dvar", "dZ0", "dmu", "dZ", "dW",
            "db", "dX")
RMS_NAMES = ("dA", "dZrms", "dgamma", "dZnorm", "drms", "dms", "dZ", "dW", "db", "dX")


def bottom(*names: str) -> set[tuple[int, str]]:
    return {(1, n) for n in names}


# (every tensor of the scenario's block 1, what the bug must break), by hand
NORM_EXPECTED: dict[str, tuple[set[tuple[int, str]], set[tuple[int, str]]]] = {
    "ln-batch-axis-mean": (bottom(*LN_NAMES), bottom("dmu", "dZ", "dW", "db", "dX")),
    "gn-interleaved-mean": (bottom(*GN_NAMES), bottom("dZ", "dW", "db", "dX")),
    "rms-subtracts-mean": (bottom(*RMS_NAMES), bottom("dZ", "dW", "db", "dX")),
}


@functools.cache
def report(bug_id: str) -> zoo.BugReport:
    return zoo.run_bug(bug_id)


def test_every_bug_is_listed_with_its_expectation() -> None:
    assert set(zoo.BUG_IDS) == set(EXPECTED) | set(NORM_EXPECTED)
    for bug in zoo.BUGS.values():
        assert bug.title and bug.explanation and bug.wrong and bug.right and bug.origin
        assert bug.wrong != bug.right


# the gradient checks -----------------------------------------------------------------------
@pytest.mark.parametrize("bug_id", list(EXPECTED))
def test_check_fails_exactly_where_it_should(bug_id: str) -> None:
    r = report(bug_id)
    chk = r.check
    judged = {(row.layer, row.tensor) for row in chk.rows if row.rel_error is not None}
    assert judged >= ALL  # every tensor of both blocks was compared
    assert chk.failed == EXPECTED[bug_id], sorted(chk.failed ^ EXPECTED[bug_id])
    assert chk.declared == EXPECTED[bug_id]  # the lab's own rule agrees with the test's
    assert chk.matches
    # the margins: a failing tensor is well above the tolerance, a passing one well below
    for row in chk.rows:
        if row.rel_error is None:
            continue
        if row.failed:
            assert row.rel_error > 5 * chk.tolerance, row
        else:
            assert row.rel_error < chk.tolerance / 50, row
    # the correct engine, checked the same way on the same batch, passes everywhere
    assert chk.correct_failed == set()
    assert all(row.correct_rel_error is not None and row.correct_rel_error < 1e-6
               for row in chk.rows if row.tensor != "db")


def test_the_public_check_differentiates_the_networks_own_forward() -> None:
    """`gradcheck` of a network with a variant part differentiates that part's forward:
    its numerical gradients are the loop's (which runs `network.loss`) and agree with a
    centred difference of `network.loss` taken by hand; the batched path, which knows the
    engine's own parts only, is not used."""
    gc = zoo.gc
    s = zoo.buggy_session(zoo.scenario_config("var-unbiased-mixup"), "var-unbiased-mixup")
    X, y = s.inspection_batch()
    X, y = X[:64], y[:64]
    net = s.network
    assert not net.fused
    public = gc.numeric_gradients(net, X, y, samples=8, rng=np.random.default_rng(0))
    loop = gc.numeric_gradients_loop(net, X, y, samples=8, rng=np.random.default_rng(0))
    for block in public:
        for name, (_, vals, _) in public[block].items():
            np.testing.assert_array_equal(vals, loop[block][name][1], err_msg=name)
    W, h = net.blocks[0].dense.W, 1e-6
    old = W[0, 0]
    W[0, 0] = old + h
    up = net.loss(X, y, update_running=False)
    W[0, 0] = old - h
    down = net.loss(X, y, update_running=False)
    W[0, 0] = old
    assert loop[1]["dW"][1][0] == pytest.approx((up - down) / (2 * h), rel=1e-5)


def test_running_stats_in_training_fails_where_the_issue_saw_it_pass() -> None:
    """The issue's case: with the running statistics used in training, layer 1's dβ was
    reported at 6.4e-10 (a copy of the correct forward was differentiated); its true error
    is large.  The session's own check, with autograd skipped for the variant part."""
    cfg = zoo.scenario_config("running-stats-in-training").with_overrides(
        bug="running-stats-in-training")
    report = Session(cfg).gradcheck(autograd=True)
    assert report.get(1, "dbeta").rel_error > 0.1
    assert not report.torch and any("autograd skipped" in n for n in report.notes)


def test_missing_one_over_m_is_exactly_m_times_too_large() -> None:
    chk = report("missing-1-over-m").check
    assert chk.batch == 64
    for row in chk.rows:
        assert row.ratio == pytest.approx(64, rel=1e-5), row
        assert row.rel_error == pytest.approx(63 / 65, rel=1e-5)  # (m − 1)/(m + 1)


def test_dbeta_sum_zbn_is_m_beta_and_only_dbeta_changes() -> None:
    cfg = zoo.scenario_config("dbeta-sum-zbn")
    bad, good = zoo.buggy_session(cfg, "dbeta-sum-zbn"), zoo.buggy_session(cfg, None)
    X, y = bad.inspection_batch()
    rng = np.random.default_rng(3)
    for s in (bad, good):  # a non-zero β, the same in both
        for bn in s.network.batchnorms():
            bn.beta = np.linspace(-1, 1, bn.num_features) + 0 * rng.standard_normal()
    for s in (bad, good):
        s.network.loss(X, y)
        s.network.backward(staged=True)
    m = len(y)
    for b_bad, b_good in zip(bad.network.blocks, good.network.blocks, strict=True):
        # Σ Zbn = γ Σ Znorm + m β = m β
        np.testing.assert_allclose(b_bad.cache["dbeta"], m * b_bad.bn.beta, atol=1e-9)
        for name in ("dgamma", "dZ", "dW"):
            np.testing.assert_allclose(b_bad.cache[name], b_good.cache[name], rtol=1e-12,
                                       atol=1e-15)


def test_eps_and_variance_bugs_compute_what_they_claim() -> None:
    cfg = zoo.scenario_config("eps-outside-sqrt")
    s = zoo.buggy_session(cfg, "eps-outside-sqrt")
    X, y = s.inspection_batch()
    s.network.loss(X, y, update_running=False)
    c = s.network.blocks[0].cache
    np.testing.assert_allclose(c["std"], np.sqrt(np.var(c["Z"], axis=0)) + 0.01, rtol=1e-12)
    s = zoo.buggy_session(zoo.scenario_config("var-unbiased-mixup"), "var-unbiased-mixup")
    s.network.loss(X, y, update_running=False)
    c = s.network.blocks[0].cache
    np.testing.assert_allclose(c["var"], np.var(c["Z"], axis=0, ddof=1), rtol=1e-12)


def test_a_variant_overrides_one_step_and_keeps_the_rest() -> None:
    """A subclass that overrides one step (here the root, with the same formula) computes
    the engine's forward bit for bit through the records, is not fused, and a subclass
    that overrides nothing is."""

    class SameRoot(BatchNorm):
        def root(self, v):  # type: ignore[no-untyped-def]
            return np.sqrt(v["var"] + self.eps)

    class Nothing(BatchNorm):
        pass

    assert not SameRoot.FUSED and Nothing.FUSED and BatchNorm.FUSED
    rng = np.random.default_rng(0)
    Z = np.asfortranarray(rng.normal(2.0, 3.0, size=(20, 5)))
    ref, var = BatchNorm(5, eps=1e-3), SameRoot(5, eps=1e-3)
    for bn in (ref, var):
        bn.gamma = np.arange(1, 6)
    np.testing.assert_array_equal(var.forward(Z), ref.forward(Z))
    np.testing.assert_array_equal(var.running_var, ref.running_var)
    with pytest.raises(RuntimeError, match="overrides a step"):
        var.train_forward(Z)


def test_running_stats_bug_matches_seed_003s_forward() -> None:
    """Three batches through seed 003's BatchNorm.forward_pass (transcribed) and through the
    lab's bug with seed 003's conventions."""
    eps, mm = 0.01, 0.99
    bn = zoo.RunningStatsBN(4, eps=eps, momentum=mm, momentum_style="keras",
                            unbiased_running_var=False, running_init="first_batch")
    rng = np.random.default_rng(1)
    _mean = _var = None
    for _ in range(3):
        X = rng.normal(1.0, 2.0, size=(10, 4))
        if _mean is None:  # seed 003, verbatim but for names
            _mean, _var = np.mean(X, axis=0), np.var(X, axis=0)
        mean, var = np.mean(X, axis=0), np.var(X, axis=0)
        _mean = mm * _mean + (1 - mm) * mean
        _var = mm * _var + (1 - mm) * var
        expected = (X - _mean) * (1 / np.sqrt(_var + eps))
        np.testing.assert_allclose(bn.forward(X), expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bn.running_mean, _mean, rtol=1e-12)


def test_running_stats_bug_with_full_momentum_is_the_correct_forward() -> None:
    """w = 1 puts all the weight on the batch: the bug's forward values become BatchNorm's
    (its graph still differs, which is what the check sees)."""
    Z = np.random.default_rng(2).normal(size=(12, 3))
    bug = zoo.RunningStatsBN(3, momentum=1.0, unbiased_running_var=False)
    np.testing.assert_allclose(bug.forward(Z), BatchNorm(3).forward(Z), rtol=1e-12, atol=1e-12)


# the loss blocks ---------------------------------------------------------------------------
def test_diag_bce_two_wrongs_make_the_cross_entropy_gradient() -> None:
    rng = np.random.default_rng(4)
    logits, y = rng.normal(size=(7, 4)), rng.integers(0, 4, 7)
    bug, ok = zoo.DiagBCELoss(), SoftmaxCrossEntropy()
    loss = bug.forward(logits, y)
    ok.forward(logits, y)
    P = ok.cache["P"]
    Y = np.eye(4)[y]
    by_hand = np.mean(np.sum(-Y * np.log(P) - (1 - Y) * np.log(1 - P), axis=1))
    assert loss == pytest.approx(by_hand, rel=1e-12)
    np.testing.assert_allclose(bug.backward(), ok.backward(), atol=1e-15)  # (P − Y)/m
    # …which is not the gradient of the loss it reports
    h, num = 1e-6, np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[idx] += h
        down[idx] -= h
        num[idx] = (zoo.DiagBCELoss().forward(up, y) - zoo.DiagBCELoss().forward(down, y)) / 2 / h
    assert np.max(np.abs(num - bug.backward())) > 1e-2


def test_diag_bce_trains_exactly_like_the_correct_engine() -> None:
    cfg = zoo.scenario_config("softmax-diag-bce")
    comp = zoo.compare_training(cfg, "softmax-diag-bce", steps=50)
    assert comp.param_gap is not None and comp.param_gap < 1e-9
    assert comp.bugged.final_loss > 1.5 * comp.correct.final_loss  # a different number


def test_no_max_shift_overflows_only_where_exp_does() -> None:
    r = report("no-max-shift")
    assert r.probe and r.probe[0].scale == 1
    for p in r.probe:
        assert math.isfinite(p.correct_loss)
        if p.max_logit < 700:
            assert p.bugged_loss == pytest.approx(p.correct_loss, rel=1e-9)
        else:
            assert not math.isfinite(p.bugged_loss)
    assert any(p.max_logit > 709 for p in r.probe)
    comp = zoo.compare_training(zoo.scenario_config("no-max-shift"), "no-max-shift", steps=50)
    assert comp.param_gap < 1e-9 and not comp.bugged.diverged


# the optimizer -----------------------------------------------------------------------------
def _updates(opt: Adam, grads: list[np.ndarray]) -> list[np.ndarray]:
    w = np.zeros(3)
    out = []
    for g in grads:
        before = w.copy()
        opt.step({"w": w}, {"w": g})
        out.append(w - before)
    return out


def test_adam_no_step_is_seed_003s_adam() -> None:
    rng = np.random.default_rng(5)
    grads = [rng.normal(size=3) for _ in range(40)]
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    m = v = np.zeros(3)
    w, seed = np.zeros(3), []
    for g in grads:  # seed 003's Adam.update, transcribed
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * np.power(g, 2)
        m_hat, v_hat = m / (1 - b1), v / (1 - b2)
        new = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        seed.append(new - w)
        w = new
    ours = _updates(zoo.AdamNoStep(lr=lr, beta1=b1, beta2=b2, eps=eps), grads)
    np.testing.assert_allclose(ours, seed, rtol=1e-10, atol=1e-16)
    # against Adam on the same gradients: equal at t = 1, then up to ~2× and later ~0.32×
    right = _updates(Adam(lr=lr), grads)
    ratio = [np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(ours, right, strict=True)]
    assert ratio[0] == pytest.approx(1.0, rel=1e-6)
    assert max(ratio[:20]) > 1.7
    for t in (5, 10, 20):
        expected = ((1 - b1**t) / (1 - b1)) / math.sqrt((1 - b2**t) / (1 - b2))
        assert ratio[t - 1] == pytest.approx(expected, rel=1e-3)


def test_adam_no_step_takes_much_larger_first_steps_in_training() -> None:
    n = report("adam-no-step").training
    ok, bad = n.correct.update_norms, n.bugged.update_norms
    assert bad[0] == pytest.approx(ok[0], rel=1e-9)  # t = 1: both corrections are 1 − β
    assert max(b / a for a, b in zip(ok[1:10], bad[1:10], strict=True)) > 1.5
    assert report("adam-no-step").check.failed == set()


def test_correct_adam_and_the_bug_against_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    grads = [rng.normal(size=3) for _ in range(10)]
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    topt = torch.optim.Adam([p], lr=0.01)
    theirs = []
    for g in grads:
        before = p.detach().clone()
        p.grad = torch.tensor(g)
        topt.step()
        theirs.append((p.detach() - before).numpy())
    np.testing.assert_allclose(_updates(Adam(lr=0.01), grads), theirs, rtol=1e-10, atol=1e-16)
    bug = _updates(zoo.AdamNoStep(lr=0.01), grads)
    np.testing.assert_allclose(bug[0], theirs[0], rtol=1e-10)
    assert np.linalg.norm(bug[5] - theirs[5]) > 0.2 * np.linalg.norm(theirs[5])


# training effects ----------------------------------------------------------------------------
def test_dbeta_sum_zbn_pins_beta_then_blows_up_with_sgd() -> None:
    """β ← β − η·m·β: β starts at 0 and stays there (up to rounding); with η·m > 2 the
    rounding grows by |1 − η·m| a step until the loss overflows."""
    cfg = zoo.scenario_config("dbeta-sum-zbn")
    early = zoo.compare_training(cfg, "dbeta-sum-zbn", steps=3)
    for k, v in early.bugged.final_params.items():
        if k.endswith("beta"):
            assert np.max(np.abs(v)) < 1e-9
            assert np.max(np.abs(early.correct.final_params[k])) > 1e-3
    tr = report("dbeta-sum-zbn").training
    assert tr.bugged.diverged and "loss became" in (tr.bugged.stopped or "")
    assert not tr.correct.diverged


def test_missing_one_over_m_scales_the_first_sgd_step_by_m() -> None:
    cfg = zoo.scenario_config("missing-1-over-m").with_optimizer("sgd").with_overrides(lr=0.2)
    tr = zoo.compare_training(cfg, "missing-1-over-m", steps=2)
    m = 240  # full batch: the spiral's training split
    assert tr.bugged.update_norms[0] == pytest.approx(m * tr.correct.update_norms[0], rel=1e-9)


def test_missing_one_over_m_is_divided_out_by_adam() -> None:
    """The lab's scenario runs Adam: m̂/√v̂ does not change when every gradient is scaled
    by m, so the bugged curve is the correct one (up to ε's share in √v̂ + ε)."""
    tr = report("missing-1-over-m").training
    np.testing.assert_allclose(tr.bugged.loss, tr.correct.loss, rtol=1e-5)  # 1.7e-6 measured


def test_bias_before_bn_is_wasted() -> None:
    r = report("bias-before-bn")
    db = [row for row in r.check.rows if row.tensor == "db"]
    assert len(db) == 2
    assert all(row.status == "zero_by_construction" and row.max_abs < 1e-12 for row in db)
    comp = zoo.compare_training(zoo.scenario_config("bias-before-bn"), "bias-before-bn",
                                steps=50)
    assert comp.param_gap < 1e-9  # W, γ, β follow the bias-free run
    np.testing.assert_allclose(comp.bugged.loss, comp.correct.loss, rtol=1e-9)


def test_forward_bugs_change_the_loss_curve() -> None:
    """Properties that hold on any CPU: both runs are far from chaotic (nudging the initial
    weights by 1e-12 moves their ends by less than 1e-6, measured), and the bug moves the
    curve by far more than that — within the first 30 steps and at the end."""
    for bug_id in ("running-stats-in-training", "var-unbiased-mixup", "eps-outside-sqrt"):
        tr = report(bug_id).training
        assert not tr.correct.diverged
        assert not tr.correct.chaotic and not tr.bugged.chaotic, bug_id
        c, b = np.array(tr.correct.loss), np.array(tr.bugged.loss)
        early = np.max(np.abs(b[:30] - c[:30]) / c[:30])
        assert early > 1e-4, (bug_id, early)  # 9e-4 … 0.2 measured
        assert abs(b[-1] - c[-1]) / c[-1] > 5e-3, bug_id  # 2 % … 36 % measured


def test_a_chaotic_run_is_measured_as_such() -> None:
    """Full-batch SGD on the spiral is chaotic once the loss leaves its plateau: the lab
    says so instead of quoting digits that are the CPU's rounding."""
    cfg = zoo.scenario_config("dbeta-sum-zbn")
    run = zoo.train_run(cfg, None)
    assert run.chaotic and run.rounding > 1e-4
    stable = zoo.train_run(zoo.scenario_config("eps-outside-sqrt"), None)
    assert not stable.chaotic and stable.rounding < 1e-9


def test_report_json_is_strict() -> None:
    """The probe's NaN loss is written as null (the one convention of every --json)."""
    text = dumps(report("no-max-shift").to_dict())
    probe = json.loads(text)["probe"]
    assert any(row["bugged_loss"] is None for row in probe)


# the command line ----------------------------------------------------------------------------
def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_lists_the_bugs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lab", "bugs")
    assert code == 0
    for bug_id in zoo.BUG_IDS:
        assert bug_id in out
    code, out, _ = run(capsys, "lab", "bugs", "--json")
    data = json.loads(out)
    assert [b["id"] for b in data["bugs"]] == list(zoo.BUG_IDS)


def test_cli_runs_one_bug(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lab", "bugs", "var-unbiased-mixup", "--steps", "20")
    assert code == 0, err
    assert "fails exactly where it should: yes" in out
    assert "FAIL" in out and "dZ0" in out
    code, out2, _ = run(capsys, "lab", "bugs", "--bug", "var-unbiased-mixup", "--steps", "20")
    assert out2 == out


def test_cli_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lab", "bugs", "dbeta-sum-zbn", "--steps", "30", "--json")
    assert code == 0, err
    d = json.loads(out)
    for key in ("bug", "title", "origin", "explanation", "wrong", "right", "check", "failed",
                "declared", "matches", "training", "scenario", "tolerance"):
        assert key in d
    assert d["matches"] is True and d["failed"] == ["1.dbeta", "2.dbeta"]
    assert d["training"]["correct"]["steps"] == 30 and len(d["training"]["bugged"]["loss"]) == 30


def test_cli_all(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lab", "bugs", "--all", "--steps", "5", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["all_match"] is True and len(d["bugs"]) == len(zoo.BUG_IDS)
    by_id = {b["bug"]: set(b["failed"]) for b in d["bugs"]}
    for bug_id, expected in [*EXPECTED.items(),
                             *((k, v[1]) for k, v in NORM_EXPECTED.items())]:
        assert by_id[bug_id] == {f"{layer}.{t}" for layer, t in expected}


@pytest.mark.parametrize("argv, needle", [
    (("lab", "bugs", "no-such-bug"), "unknown bug 'no-such-bug'"),
    (("lab", "bugs", "adam-no-step", "--optimizer", "sgd"), "needs the adam optimizer"),
    (("lab", "bugs", "dbeta-sum-zbn", "--all"), "not both"),
    (("lab", "bugs", "--steps", "-3"), "steps"),
    (("lab", "bugs", "ln-batch-axis-mean", "--arch", "16:tanh,C"),
     "the bug ln-batch-axis-mean lives in LayerNorm, and the arch '16:tanh,C' has no "
     "LayerNorm block"),
    (("lab", "bugs", "eps-outside-sqrt", "--arch", "16:rms:tanh,C:ln"),
     "lives in BatchNorm"),
    (("lab", "bugs", "gn-interleaved-mean", "--arch", "16:ln:tanh,C"), "no GroupNorm block"),
    (("gradcheck", "--bug", "rms-subtracts-mean", "--arch", "8:tanh,C"), "no RMSNorm block"),
])
def test_cli_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
                                   needle: str) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(list(argv))
        raise SystemExit(code)
    assert exc.value.code == 2
    _, err = capsys.readouterr()
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    if "unknown bug" in needle:
        assert all(bug_id in err for bug_id in zoo.BUG_IDS)


@pytest.mark.parametrize("bug_id", zoo.BUG_IDS)
def test_gradcheck_bug_flags_exactly_the_declared_tensors(
        bug_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`bntui gradcheck --bug BUG_ID --json`: the bug's own network, checked by the public
    gradient check, fails exactly where the bug must (and the JSON says which)."""
    code, out, _ = run(capsys, "gradcheck", "--bug", bug_id, "--json", "--no-autograd")
    assert code == 0
    d = json.loads(out)
    verdict = d["bug_verdict"]
    assert d["bug"] == bug_id and verdict["matches"], verdict
    failing = {f"{c['layer']}.{c['tensor']}" for c in d["checks"]
               if c["pair"] == "analytic_vs_numeric" and c["status"] == "ok"
               and c["rel_error"] > verdict["tolerance"]}
    assert failing == set(verdict["declared"])


def test_gradcheck_bug_with_other_run_flags(capsys: pytest.CaptureFixture[str]) -> None:
    """Run flags go on top of the bug's scenario; a bug that needs another optimizer, or an
    unknown bug, is one line and exit 2."""
    code, out, _ = run(capsys, "gradcheck", "--bug", "missing-1-over-m", "--dataset", "moons",
                       "--arch", "8:tanh,C", "--json", "--no-autograd")
    d = json.loads(out)
    assert code == 0 and d["dataset"] == "moons" and d["bug_verdict"]["matches"]
    assert all(r["ratio"] == pytest.approx(d["batch_size"], rel=1e-4) for r in d["checks"]
               if r["status"] == "ok")
    for argv, words in ((["--bug", "nope"], "unknown bug 'nope'"),
                        (["--preset", "seed-softmax", "--bug", "adam-no-step"],
                         "needs the adam optimizer")):
        code, out, err = run(capsys, "gradcheck", *argv)
        assert code == 2 and out == "" and words in err and len(err.strip().splitlines()) == 1


# the normalization family's bugs ------------------------------------------------------------
@pytest.mark.parametrize("bug_id", list(NORM_EXPECTED))
def test_norm_bug_check_fails_exactly_where_it_should(bug_id: str) -> None:
    """Each layer's classic mistake, one overridden step: the gradient check of its own
    forward fails exactly on the tensors written out above (the output BatchNorm block,
    above the bug, passes), by a wide margin; the correct engine passes everywhere."""
    everything, expected = NORM_EXPECTED[bug_id]
    chk = report(bug_id).check
    judged = {(row.layer, row.tensor) for row in chk.rows if row.rel_error is not None}
    assert judged >= TOP | everything
    assert chk.failed == expected, sorted(chk.failed ^ expected)
    assert chk.declared == expected and chk.matches
    for row in chk.rows:
        if row.rel_error is None:
            continue
        if row.failed:
            assert row.rel_error > 5 * chk.tolerance, row
        else:
            assert row.rel_error < chk.tolerance / 50, row
    assert chk.correct_failed == set()
    bug = zoo.get_bug(bug_id)
    assert bug.needs == bug_id.split("-")[0]
    net = zoo.buggy_session(zoo.scenario_config(bug_id), bug_id).network
    norm = net.blocks[0].norm
    assert type(norm).__name__ != norm.title and not norm.FUSED and not net.fused


def test_every_bug_names_the_layer_it_lives_in() -> None:
    needs = {b.id: b.needs for b in zoo.BUGS.values()}
    assert needs == {
        "running-stats-in-training": "bn", "adam-no-step": None, "softmax-diag-bce": None,
        "dbeta-sum-zbn": "bn", "no-max-shift": None, "missing-1-over-m": None,
        "eps-outside-sqrt": "bn", "var-unbiased-mixup": "bn", "bias-before-bn": "bn",
        "ln-batch-axis-mean": "ln", "gn-interleaved-mean": "gn", "rms-subtracts-mean": "rms"}


def _block_one(bug_id: str | None, scenario: str):
    s = zoo.buggy_session(zoo.scenario_config(scenario), bug_id)
    X, y = s.inspection_batch()
    s.network.loss(X[:40], y[:40], update_running=False)
    return s.network.blocks[0]


def test_ln_batch_axis_mean_centres_over_the_batch_and_wastes_the_bias() -> None:
    """Z0 is Z minus its column means (BatchNorm's axis) — every feature of the batch has
    mean 0, not every sample; so one sample's output now moves with the rest of the batch,
    and the Dense bias (a constant per feature) is subtracted away: its numerical gradient
    is rounding, its analytic one is not."""
    block = _block_one("ln-batch-axis-mean", "ln-batch-axis-mean")
    c = block.cache
    np.testing.assert_allclose(c["Z0"], c["Z"] - c["Z"].mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(c["mu"][:, 0], c["Z"].mean(axis=1), rtol=1e-12)  # unused
    assert np.abs(c["Z0"].mean(axis=1)).max() > 1e-3  # samples are not centred
    norm = block.norm
    Z = c["Z"]
    alone = norm.forward(Z[:10], update_running=False)
    together = norm.forward(Z, update_running=False)[:10]
    assert np.abs(alone - together).max() > 1e-2
    from bntui.engine.layernorm import LayerNorm

    ok = LayerNorm(Z.shape[1])
    np.testing.assert_allclose(ok.forward(Z[:10]), ok.forward(Z)[:10], rtol=1e-13, atol=1e-14)
    db = next(r for r in report("ln-batch-axis-mean").check.rows if r.tensor == "db")
    assert db.failed and db.rel_error == pytest.approx(1.0, abs=1e-6)  # numerical ≈ 0


def test_gn_interleaved_mean_averages_every_gth_channel() -> None:
    block = _block_one("gn-interleaved-mean", "gn-interleaved-mean")
    c, G = block.cache, block.norm.num_groups
    Z = c["Z"]
    for g in range(G):
        np.testing.assert_allclose(c["mu"][:, g], Z[:, g::G].mean(axis=1), rtol=1e-12)
    S = Z.shape[1] // G
    np.testing.assert_allclose(  # centred by the wrong mean, grouped the right way
        c["Z0"], Z - np.repeat(c["mu"], S, axis=1), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(c["var"], (c["Z0"].reshape(len(Z), G, S) ** 2).mean(axis=2),
                               rtol=1e-12)


def test_rms_subtracts_mean_divides_by_the_std() -> None:
    block = _block_one("rms-subtracts-mean", "rms-subtracts-mean")
    c = block.cache
    np.testing.assert_allclose(c["ms"][:, 0], c["Z"].var(axis=1), rtol=1e-12)
    np.testing.assert_allclose(c["Znorm"], c["Z"] / np.sqrt(c["Z"].var(axis=1, keepdims=True)
                                                            + 1e-6), rtol=1e-12)


@pytest.mark.parametrize("bug_id", list(NORM_EXPECTED))
def test_norm_bugs_disagree_with_torchs_layer(bug_id: str) -> None:
    """The other way to catch them: the bugged layer's forward against torch's own layer
    on the same input (the correct engine layer agrees to rounding)."""
    torch = pytest.importorskip("torch")
    bugged = _block_one(bug_id, bug_id)
    correct = _block_one(None, bug_id)
    Z = torch.tensor(bugged.cache["Z"])
    norm = correct.norm
    if bug_id.startswith("ln"):
        ref = torch.nn.functional.layer_norm(Z, (Z.shape[1],), eps=norm.eps)
    elif bug_id.startswith("gn"):
        ref = torch.nn.functional.group_norm(Z, norm.num_groups, eps=norm.eps)
    else:
        ref = torch.nn.functional.rms_norm(Z, (Z.shape[1],), eps=norm.eps)
    ref = ref.numpy()
    out = bugged.cache[bugged.pre_name]
    assert np.abs(correct.norm.forward(bugged.cache["Z"]) - ref).max() < 1e-12
    assert np.abs(out - ref).max() > 1e-2


@pytest.mark.parametrize("bug_id", list(NORM_EXPECTED))
def test_norm_bugs_change_the_loss_curve(bug_id: str) -> None:
    """Neither run is chaotic (nudging the initial weights by 1e-12 moves their ends by
    rounding, measured), and the bug moves the curve by far more than that."""
    tr = report(bug_id).training
    assert not tr.correct.diverged and not tr.bugged.diverged
    assert not tr.correct.chaotic and not tr.bugged.chaotic, bug_id
    c, b = np.array(tr.correct.loss), np.array(tr.bugged.loss)
    assert np.max(np.abs(b[:30] - c[:30]) / c[:30]) > 1e-3  # 6e-3 … 0.3 measured
    assert abs(b[-1] - c[-1]) / c[-1] > 1e-2  # 9 % … 18× measured
