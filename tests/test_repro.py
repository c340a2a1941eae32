"""Table reproductions (``ratedist repro``): quick modes, structure and internal consistency.

The quick modes are smoke tests (1 seed, 2 pruning levels / 6 FL rounds); the checks are on
structure and consistency, never on agreement with the paper: accuracies are fractions in
[0, 1], the sparsities asked for are reached, every rate is measured from bytes that decode,
the published numbers parse and match the protocol, and every run writes a manifest.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratedist.cli import main as cli_main
from ratedist.errors import InvalidArgumentError
from ratedist.scripts import load_script, repo_root

torch = pytest.importorskip("torch")

# A retrained SuRP/pruned model has exactly the sparsity of its mask: at most one weight of
# slack from rounding the target to a whole number of weights (SuRP stops at the first
# checkpoint whose sparsity is <= the target, so it can fall short by one weight).
ONE_WEIGHT = 1.0 / 38_000  # the smaller network has 38,160 weights
N_TEST = 450  # digits test split


@pytest.fixture(scope="module")
def surp_mod():
    return load_script(repo_root() / "paper_repro" / "surp_table.py")


@pytest.fixture(scope="module")
def fedpm_mod():
    return load_script(repo_root() / "paper_repro" / "fedpm_table.py")


@pytest.fixture(scope="module")
def surp_quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("surp")
    code = cli_main(["repro", "surp", "--quick", "--out", str(out), "--json"])
    assert code == 0
    return out, json.loads((out / "surp.json").read_text())


@pytest.fixture(scope="module")
def fedpm_quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("fedpm")
    code = cli_main(["repro", "fedpm", "--quick", "--out", str(out), "--json"])
    assert code == 0
    return out, json.loads((out / "fedpm.json").read_text())


# ----------------------------------------------------------------------------- expected files


def test_expected_surp_parses_and_matches_protocol():
    """The published pruning ratios are 1 - 0.8^k (docs/theory.md §4d, LAMP protocol) to the
    slides' two decimals, and every method row has one accuracy (%) per ratio."""
    exp = json.loads((repo_root() / "paper_repro" / "expected" / "surp.json").read_text())
    assert "slides" in exp["source"]
    assert set(exp["tables"]) == {"VGG-16/CIFAR-10", "ResNet-20/CIFAR-10", "ResNet-50/ImageNet"}
    for name, t in exp["tables"].items():
        for row in t["accuracy_pct"].values():
            assert len(row) == len(t["pruning_ratio_pct"])
            assert all(0 < v < 100 for v in row)
        if t["k"] is not None:
            for k, r in zip(t["k"], t["pruning_ratio_pct"]):
                assert abs(r - 100 * (1 - 0.8 ** k)) <= 0.005 + 1e-9, (name, k, r)
    assert exp["tables"]["ResNet-20/CIFAR-10"]["accuracy_pct"]["SuRP"][0] == 90.44


def test_expected_fedpm_parses():
    """Tables 1 and 3 of the FedPM slides: 5 methods x 3 participation ratios per c_max, each
    a (mean, sigma) pair; accuracies in [0, 1], bit rates in (0, 2)."""
    exp = json.loads((repo_root() / "paper_repro" / "expected" / "fedpm.json").read_text())
    assert exp["rho"] == [1.0, 0.5, 0.1]
    for table, lo, hi in (("accuracy", 0.0, 1.0), ("bpp", 0.0, 2.0)):
        for key in ("c_max=4", "c_max=2"):
            rows = exp[table][key]
            assert set(rows) == {"DRIVE", "EDEN", "QSGD", "FedMask", "FedPM"}
            for cells in rows.values():
                assert len(cells) == 3
                assert all(lo < m <= hi and s >= 0 for m, s in cells)
    assert exp["accuracy"]["c_max=4"]["FedPM"][0] == [0.748, 0.003]


# ----------------------------------------------------------------------------- helpers


@settings(max_examples=25, deadline=None)
@given(n_clients=st.integers(1, 30), c_max=st.integers(1, 10), seed=st.integers(0, 2**31 - 1))
def test_partition_respects_c_max(fedpm_mod, n_clients, c_max, seed):
    """Non-IID split (docs/theory.md §5 setup): every client holds at most c_max classes, the shares
    are disjoint, and every sample of a class held by some client is dealt out."""
    y = np.repeat(np.arange(10), 13)
    parts = fedpm_mod.partition(y, n_clients, c_max, seed)
    assert len(parts) == n_clients
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == len(allidx)
    for p in parts:
        assert len(np.unique(y[p])) <= c_max
    held = np.unique(y[allidx])
    assert np.array_equal(np.sort(allidx), np.flatnonzero(np.isin(y, held)))
    if n_clients * c_max >= 10:
        assert len(held) == 10


def test_compare_orderings_margin(surp_mod):
    """An ordering agrees only beyond the margin (seed std, or the test-set standard error)."""
    C = surp_mod.C
    pairs = [("A", "B")]
    assert C.compare_orderings(pairs, {"A": [(0.9, 0.0)], "B": [(0.5, 0.0)]}, n_test=N_TEST)[0]["verdict"] == "agrees"
    assert C.compare_orderings(pairs, {"A": [(0.5, 0.0)], "B": [(0.9, 0.0)]}, n_test=N_TEST)[0]["verdict"] == "disagrees"
    # one test image apart is within the sampling error
    tie = C.compare_orderings(pairs, {"A": [(0.9 + 1 / N_TEST, 0.0)], "B": [(0.9, 0.0)]}, n_test=N_TEST)
    assert tie[0]["verdict"] == "within noise"
    mixed = C.compare_orderings(pairs, {"A": [(0.9, 0.0), (0.5, 0.0), (0.9, 0.0)],
                                        "B": [(0.5, 0.0), (0.9, 0.0), (0.9, 0.0)]}, n_test=N_TEST)[0]
    assert mixed["verdict"] == "mixed" and (mixed["n_agree"], mixed["n_tie"], mixed["n_disagree"]) == (1, 1, 1)
    nan = C.compare_orderings(pairs, {"A": [(math.nan, math.nan)], "B": [(0.5, 0.0)]}, n_test=N_TEST)[0]
    assert nan["verdict"] == "n/a"
    assert C.pairwise_orderings({"A": [2, 3], "B": [1, 4]}) == []
    assert C.pairwise_orderings({"A": [2, 5], "B": [1, 4]}) == [("A", "B")]


# ----------------------------------------------------------------------------- quick runs


def _manifest_ok(path, name):
    man = json.loads((path / f"{name}.manifest.json").read_text())
    assert man["name"] == name and man["wall_time_s"] > 0 and man["seeds"] == [0]
    assert man["versions"]["torch"] and man["versions"]["numpy"] and man["arguments"]["quick"] is True
    for f in man["outputs"]:
        assert (path / f.split("/")[-1]).exists()


def test_surp_quick_outputs(surp_quick, surp_mod):
    """Quick SuRP table: files written, accuracies in [0, 1], the protocol's sparsities reached,
    SuRP's bits are its stream's bytes, baselines' bits are ratedist.pruning.cost's."""
    out, data = surp_quick
    for ext in ("json", "md", "png", "pdf"):
        assert (out / f"surp.{ext}").stat().st_size > 0
    _manifest_ok(out, "surp")
    cfg = data["config"]
    assert cfg["quick"] and cfg["seeds"] == [0]
    for run in data["runs"]:
        assert 0.0 <= run["dense_accuracy"] <= 1.0
        n = run["n_params"]
        for method, rounds in run["methods"].items():
            assert [r["k"] for r in rounds] == cfg["rounds_k"][: len(rounds)]
            for r in rounds:
                if "error" in r:
                    assert method == "Adaptive" and "Unreachable" in r["error"]
                    continue
                assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["accuracy_before_retrain"] <= 1.0
                assert abs(r["sparsity"] - (1 - 0.8 ** r["k"])) <= ONE_WEIGHT + 1e-12
                assert r["n_bits"] > 0 and math.isclose(r["bpp"], r["n_bits"] / n, rel_tol=1e-9)
                if method == "SuRP":
                    assert r["n_bits"] <= 8 * r["stream_bytes"]
                    assert r["n_bits"] > 8 * (r["stream_bytes"] - 64)
            # only Adaptive may stop early (dense first layer), and then with a reason
            if method != "Adaptive":
                assert len(rounds) == len(cfg["rounds_k"])
    md = (out / "surp.md").read_text()
    assert "QUICK mode" in md and "ResNet-20/CIFAR-10" in md and "Do the paper's orderings hold here?" in md
    verdicts = {c["verdict"] for checks in data["orderings"]["by_model"].values() for c in checks}
    assert verdicts <= set(surp_mod.C.VERDICTS)
    assert len(data["orderings"]["published_pairs"]) >= 4


def test_fedpm_quick_outputs(fedpm_quick):
    """Quick FedPM table: accuracies in [0, 1], clients hold <= c_max classes, every method's
    rate is measured from its uplink bytes (> 0) and FedPM's lies within a few header bytes of
    the paper's formula h_b(f) + log2(N)/N <= 1 + log2(N)/N."""
    out, data = fedpm_quick
    for ext in ("json", "md", "png", "pdf"):
        assert (out / f"fedpm.{ext}").stat().st_size > 0
    _manifest_ok(out, "fedpm")
    cfg = data["config"]
    assert len(data["runs"]) == len(cfg["c_max"]) * len(cfg["rho"]) * len(cfg["methods"]) * len(cfg["seeds"])
    for r in data["runs"]:
        assert 0.0 <= r["final_accuracy"] <= 1.0
        assert all(0.0 <= a <= 1.0 for _, a in r["curve"])
        assert max(r["client_classes"]) <= r["c_max"]
        assert sum(r["client_sizes"]) > 0
        assert len(r["bpp_per_round"]) == cfg["rounds"] and min(r["bpp_per_round"]) > 0
        assert r["clients_per_round"] == max(1, round(r["rho"] * cfg["n_clients"]))
        if r["method"] in ("FedPM", "FedMask"):
            # a 1-bit mask per weight plus a header: never more than 1 bpp + 1 %
            assert r["bpp_mean"] <= 1.01
        if r["method"] == "FedPM":
            assert r["bpp_paper_estimate_mean"] <= 1 + math.log2(r["d"]) / r["d"] + 1e-12
            assert r["bpp_mean"] >= r["bpp_paper_estimate_mean"] - 1e-3
    for key, tm in data["table"].items():
        for cells in tm.values():
            assert [c["rho"] for c in cells] == cfg["rho"]
    md = (out / "fedpm.md").read_text()
    assert "QUICK mode" in md and "published" in md


def test_fedpm_quick_accounting_study(fedpm_quick, fedpm_mod):
    """The quick table's accounting study: every recipe and its lr-0 control have one entry per round; the
    per-coordinate code (under the broadcast θ^g) costs at most the paper's accounting + 0.01 bpp wherever θ^g
    is polarized (mean h_b(θ^g) <= 0.8) — and far less once it is (<= 0.7: 0.1 bpp less); the paper's measured
    bytes sit within 1 % above its formula h_b(f) + log2(N)/N; and the lr-0 controls' θ^g entropy falls by more
    than 0.2 bits in 6 rounds, as fast as the trained runs' (within 0.1), with no learning."""
    out, data = fedpm_quick
    study = data["study"]
    rows = {r["label"]: r for r in study["rows"]}
    assert set(rows) == {label for label, _, _ in fedpm_mod.STUDY_RUNS}
    rounds = data["config"]["rounds"]
    for r in rows.values():
        pr = r["per_round"]
        assert all(len(pr[k]) == rounds for k in pr)
        for paper, formula, coord, h in zip(pr["paper"], pr["paper_formula"], pr["per_coordinate"],
                                            pr["theta_entropy"]):
            assert formula <= paper <= formula + 0.01
            if h <= 0.8:
                assert coord <= paper + 0.01
            if h <= 0.7:
                assert coord <= paper - 0.1
        assert sum(b["rounds"][1] - b["rounds"][0] + 1 for b in r["bands"]) == rounds
    assert rows["reference code"]["d"] == 50_432 + 256 + 128 + 10  # masked biases
    for trained, control in (("paper (straight-through)", "paper, lr 0 (control)"),
                             ("reference code", "reference, lr 0 (control)")):
        c, a = rows[control]["per_round"], rows[trained]["per_round"]
        assert rows[control]["score_lr"] == 0.0
        assert c["theta_entropy_after"][-1] < c["theta_entropy"][0] - 0.2
        assert np.all(np.diff(c["theta_entropy"]) < 0)
        assert abs(c["theta_entropy_after"][-1] - a["theta_entropy_after"][-1]) < 0.1
    md = (out / "fedpm.md").read_text()
    assert "two accountings" in md and "lr 0 (control)" in md


def test_fedpm_accountings_are_decoded_bytes(fedpm_mod, monkeypatch):
    """Both accountings of a round are 8 × len(payload) / N of payloads of ratedist.fedpm's two codes, and a
    payload that does not decode to its mask is an error, not a rate."""
    from ratedist import fedpm

    rng = np.random.default_rng(3)
    theta_b = np.clip(rng.beta(0.3, 0.3, 4000), 0.01, 0.99)
    masks = (rng.random((3, 4000)) < theta_b).astype(np.uint8)
    acc = fedpm_mod._accounting_round(masks, theta_b)
    assert acc["paper"] == pytest.approx(np.mean([8 * len(fedpm.bitrate_paper(m).data) / 4000 for m in masks]))
    assert acc["per_coordinate"] == pytest.approx(
        np.mean([8 * len(fedpm.bitrate_per_coordinate(m, theta_b).data) / 4000 for m in masks]))
    assert acc["density"] == pytest.approx(masks.mean())
    assert acc["per_coordinate"] < acc["paper"] - 0.3  # polarized θ: per-coordinate coding pays off
    monkeypatch.setattr(fedpm, "decode_mask_per_coordinate", lambda data, th: np.zeros(4000, dtype=np.uint8))
    with pytest.raises(RuntimeError, match="does not decode"):
        fedpm_mod._accounting_round(masks, theta_b)


def test_fedpm_reference_config_as_a_whole(fedpm_mod):
    """`config(reference=True)` selects every field of the reference recipe; fields can still be overridden;
    contradictions, a negative learning rate and the reference recipe on the Flower engine are clear errors."""
    cfg = fedpm_mod.config(True, reference=True)
    assert (cfg.variant, cfg.ste, cfg.adam, cfg.init, cfg.bias, cfg.inputs, cfg.reference_mapping, cfg.local_steps) == (
        "reference", "theta_scaled", "persistent", "me", True, "symmetric", True, 118)
    assert fedpm_mod.config(True, variant="reference") == cfg
    assert fedpm_mod.config(True, reference=True, local_steps=30).local_steps == 30
    paper = fedpm_mod.config(True)
    assert (paper.ste, paper.adam, paper.bias, paper.local_steps) == ("plain", "fresh", False, None)
    with pytest.raises(InvalidArgumentError, match="`reference=True`"):
        fedpm_mod.config(True, reference=True, variant="paper")
    with pytest.raises(InvalidArgumentError, match="`variant`"):
        fedpm_mod.config(True, variant="mine")
    with pytest.raises(InvalidArgumentError, match="`score_lr`"):
        fedpm_mod.config(True, score_lr=-0.1)
    with pytest.raises(InvalidArgumentError, match="`adam='persistent'`"):
        fedpm_mod.config(True, reference=True, engine="flower")


def test_fedpm_reference_network_and_step_budget(fedpm_mod):
    """The reference network: every weight and bias is ±e·√(1/fan_in), with the paper variant's weight signs;
    the paper variant is ±√(2/fan_in) without biases. A step budget gives exactly that many mini-batches."""
    ref = fedpm_mod._frozen_weights(0, "me", True)
    pap = fedpm_mod._frozen_weights(0)
    assert [tuple(t.shape) for t in ref] == [(256, 64), (256,), (128, 256), (128,), (10, 128), (10,)]
    for i, fan in enumerate((64, 256, 128)):
        w, b = ref[2 * i], ref[2 * i + 1]
        assert torch.allclose(w.abs(), torch.full_like(w, math.e / math.sqrt(fan)))
        assert torch.allclose(b.abs(), torch.full_like(b, math.e / math.sqrt(fan)))
        assert torch.equal(torch.sign(w), torch.sign(pap[i]))
        assert torch.allclose(pap[i].abs(), torch.full_like(w, math.sqrt(2 / fan)))
    g = torch.Generator().manual_seed(0)
    cfg = fedpm_mod.config(True, local_steps=118, batch=32)
    sizes = [len(b) for b in fedpm_mod._batches(100, cfg, g)]
    assert len(sizes) == 118 and max(sizes) == 32
    assert len(list(fedpm_mod._batches(100, fedpm_mod.config(True, local_epochs=3), g))) == 3 * 4


def test_fedpm_lr0_shortcut_equals_the_loop(fedpm_mod):
    """At learning rate 0 Adam never moves the scores: the skipped local loop returns θ_k bit for bit equal to
    running the loop (both recipes, the persistent Adam state included)."""
    X = torch.randn(40, 64)
    y = torch.randint(0, 10, (40,))
    for reference in (False, True):
        cfg = fedpm_mod.config(True, reference=reference, score_lr=0.0, local_steps=5)
        W0 = fedpm_mod._frozen_weights(1, cfg.init, cfg.bias)
        scores = [torch.randn(w.shape, generator=torch.Generator().manual_seed(2)) for w in W0]
        fast = fedpm_mod._local_masks(W0, scores, X, y, cfg, "FedPM", 7, {})
        slow = fedpm_mod._local_masks(W0, scores, X, y, cfg, "FedPM", 7, {}, _run_frozen_loop=True)
        assert np.array_equal(fast, slow)


def test_cli_repro_rejects_bad_arguments(capsys):
    """Bad --seeds is a one-line error and exit code 2, not a traceback."""
    assert cli_main(["repro", "surp", "--quick", "--seeds", "0", "--out", "unused"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_figure_reads_table_data(surp_quick, surp_mod):
    """figures/accuracy_sparsity.py plots the table's aggregate (one curve per reachable method)."""
    import matplotlib

    matplotlib.use("Agg")
    fig_mod = load_script(repo_root() / "figures" / "accuracy_sparsity.py")
    _, data = surp_quick
    fig = fig_mod.plot({"source": "computed", "config": data["config"], "aggregate": data["aggregate"]})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lbl.startswith("SuRP") for lbl in labels) and "dense" in labels
    assert "sparsity" in ax.get_xlabel() and "%" in ax.get_ylabel()
