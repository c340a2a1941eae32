"""The CLI boundary: every bad input is one line on stderr, the right exit code, no traceback, no input harmed.

Output paths are tested with FIFOs and symlinks made in ``tmp_path``; nothing
here opens or writes anything under /dev.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from ratedist.cli import main
from ratedist.io import load_weights, open_weights, save_weights

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"fc1.weight": rng.standard_normal((64, 32)).astype(np.float32),
            "fc1.bias": rng.standard_normal(64).astype(np.float32),
            "fc2.weight": rng.standard_normal((16, 64)).astype(np.float32)}


N_PARAMS = 64 * 32 + 64 + 16 * 64


def _digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``folder`` (FIFOs and links to folders are skipped, never opened)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as fh:
                out[str(p.relative_to(folder))] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A .safetensors, a .npz, a quant stream and a SuRP stream of the same small model (made once)."""
    d = tmp_path_factory.mktemp("template")
    w = _weights()
    save_weights(d / "w.safetensors", w)
    save_weights(d / "w.npz", w)
    from ratedist import quant, surp

    (d / "q.rdst").write_bytes(quant.encode(w, method="scalar", rate=3.0, bound=False).stream)
    (d / "s.rdst").write_bytes(surp.encode(w, [0.5], progress=False).stream)
    return d


@pytest.fixture()
def files(tmp_path, template):
    """This test's own copy of the template's inputs, in ``tmp_path / "in"``."""
    d = tmp_path / "in"
    d.mkdir()
    for p in template.iterdir():
        (d / p.name).write_bytes(p.read_bytes())
    return d


def _run(capsys, argv, code):
    """Run the CLI; assert the exit code and a one-line, traceback-free stderr; return stderr."""
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert rc == code, (rc, err)
    assert "Traceback" not in cap.err
    if code:
        assert len(err.splitlines()) == 1, err
    return err


def _json(capsys, argv):
    """Run the CLI with --json; assert exit 0 and no traceback; return the payload."""
    rc = main([str(a) for a in argv] + ["--json"])
    cap = capsys.readouterr()
    assert rc == 0 and "Traceback" not in cap.err, cap.err
    return json.loads(cap.out)


def _one_line_fail(capsys, files, argv, needle, code=2):
    before = _digest(files)
    err = _run(capsys, argv, code)
    assert needle in err, err
    assert _digest(files) == before  # no input modified (and no stray file written next to them)
    return err


# --------------------------------------------------------------------------- output paths


@pytest.mark.parametrize("verb", ["surp", "quant"])
def test_encode_output_is_the_input_through_a_symlink(tmp_path, files, capsys, verb):
    """`-o` naming the input (here through a symlink ending in .rdst) is refused: the weights survive."""
    link = tmp_path / "link.rdst"
    link.symlink_to(files / "w.safetensors")
    extra = ["--sparsity", "0.5"] if verb == "surp" else ["--rate", "3", "--no-bound"]
    err = _one_line_fail(capsys, files, [verb, "encode", files / "w.safetensors", "-o", link, *extra], "`-o`")
    assert "input" in err and str(link) in err


@pytest.mark.parametrize("case", ["same-path", "symlink", "hardlink", "like", "shard-folder"])
def test_weights_output_equal_to_an_input_is_refused(tmp_path, files, capsys, case):
    """prune and decode refuse an output that is an input file (same path, symlink, --like) or its folder."""
    if case == "same-path":
        argv = ["prune", files / "w.npz", "-o", files / "w.npz", "--sparsity", "0.5"]
    elif case == "symlink":
        (tmp_path / "l.npz").symlink_to(files / "w.npz")
        argv = ["prune", files / "w.npz", "-o", tmp_path / "l.npz", "--sparsity", "0.5"]
    elif case == "hardlink":
        os.link(files / "w.npz", tmp_path / "h.npz")
        argv = ["prune", files / "w.npz", "-o", tmp_path / "h.npz", "--sparsity", "0.5"]
    elif case == "like":
        argv = ["surp", "decode", files / "s.rdst", "-o", files / "w.safetensors", "--like", files / "w.safetensors"]
    else:
        argv = ["prune", files, "-o", files, "--sparsity", "0.5"]
        os.unlink(files / "w.npz")  # the folder then holds one checkpoint (its .safetensors)
    _one_line_fail(capsys, files, argv, "`-o`")


@pytest.mark.parametrize("argv_tail", [
    ["surp", "encode", "{w}", "-o", "{fifo}.rdst", "--sparsity", "0.5"],
    ["quant", "decode", "{q}", "-o", "{fifo}.npz"],
    ["prune", "{w}", "-o", "{fifo}.safetensors", "--sparsity", "0.5"],
])
def test_fifo_output_is_refused_and_left_alone(tmp_path, files, capsys, argv_tail):
    """A FIFO at the output path is not replaced by a regular file (nor opened: that would block)."""
    fifo = tmp_path / "out"
    suffix = argv_tail[argv_tail.index("-o") + 1].split("}")[1]
    fifo = fifo.with_suffix(suffix)
    os.mkfifo(fifo)
    argv = [a.format(w=files / "w.safetensors", q=files / "q.rdst", fifo=tmp_path / "out") for a in argv_tail]
    err = _one_line_fail(capsys, files, argv, "not a regular file")
    assert str(fifo) in err
    assert fifo.exists() and not fifo.is_file()  # still the FIFO


@pytest.mark.parametrize("bad, needle", [
    ("", "empty"),
    ("{in}/w.npz/x.rdst", "not a directory"),
    ("{tmp}/dir.rdst", "directory"),
    ("{tmp}/x.safetensors", "must end in .rdst"),
    ("{tmp}/" + "n" * 300 + ".rdst", "too long"),
])
def test_bad_stream_output_paths(tmp_path, files, capsys, bad, needle):
    """Empty, under a file, a directory, a wrong suffix, a name too long: one line naming `-o`, nothing written."""
    (tmp_path / "dir.rdst").mkdir()
    out = bad.format(**{"in": files, "tmp": tmp_path})
    err = _one_line_fail(capsys, files, ["surp", "encode", files / "w.npz", "-o", out, "--sparsity", "0.5"], needle)
    assert "`-o`" in err
    assert not any(p.suffix == ".tmp" for p in tmp_path.rglob("*"))


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")
def test_unwritable_output_folder(tmp_path, files, capsys):
    """A folder without write permission is refused up front, naming it."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        err = _one_line_fail(capsys, files, ["quant", "encode", files / "w.npz", "-o", ro / "x.rdst", "--rate", "3",
                                             "--no-bound"], "not writable")
        assert str(ro) in err and list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("argv", [
    ["prune", "{w}", "-o", "{tmp}/x.pt", "--sparsity", "0.5"],
    ["quant", "encode", "{w}", "-o", "{tmp}/x.npz", "--rate", "3"],
    ["surp", "decode", "{s}", "-o", "{tmp}/x.rdst"],
    ["surp", "encode", "{w}", "-o", "{w}", "--sparsity", "0.5"],  # the campaign's data-loss case
])
def test_wrong_output_suffix(tmp_path, files, capsys, argv):
    """Each writing verb checks the suffix it writes."""
    argv = [a.format(w=files / "w.npz", s=files / "s.rdst", tmp=tmp_path) for a in argv]
    _one_line_fail(capsys, files, argv, "must end in")
    assert not list(tmp_path.glob("x.*"))


def test_output_folder_of_frontier_is_a_file(tmp_path, files, capsys):
    """`--out` that is a file (or under one) is refused before any work."""
    _one_line_fail(capsys, files, ["frontier", files / "w.npz", "--out", files / "w.npz"], "`--out`")
    _one_line_fail(capsys, files, ["figures", "--out", files / "w.npz" / "sub"], "`--out`")


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("argv", [
    ["surp", "inspect", "{fifo}.rdst"],
    ["quant", "decode", "{fifo}.rdst", "-o", "{tmp}/d.npz"],
    ["prune", "{fifo}.safetensors", "-o", "{tmp}/d.npz", "--sparsity", "0.5"],
    ["surp", "inspect", "{tmp}/missing.rdst"],
    ["surp", "inspect", "{tmp}"],
])
def test_fifo_missing_or_folder_input(tmp_path, files, capsys, argv):
    """A FIFO, a missing path or a folder given as a stream is one line (a FIFO is never opened: no hang)."""
    os.mkfifo(tmp_path / "p.rdst")
    os.mkfifo(tmp_path / "p.safetensors")
    argv = [a.format(fifo=tmp_path / "p", tmp=tmp_path) for a in argv]
    _one_line_fail(capsys, files, argv, str(tmp_path))


@pytest.mark.skipif(IS_ROOT, reason="root reads unreadable files")
def test_unreadable_input(tmp_path, files, capsys):
    """A stream without read permission: one line naming it, exit 2."""
    p = tmp_path / "locked.rdst"
    p.write_bytes((files / "q.rdst").read_bytes())
    p.chmod(0)
    try:
        err = _run(capsys, ["quant", "inspect", p], 2)
        assert str(p) in err and "readable" in err
    finally:
        p.chmod(0o600)


def test_input_read_error_names_the_file(tmp_path, files, capsys, monkeypatch):
    """An input whose read fails (EACCES, EIO: simulated, so it also runs as root) is one line naming `IN`."""
    real = Path.read_bytes

    def denied(self):
        if self.suffix == ".rdst":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    err = _one_line_fail(capsys, files, ["surp", "inspect", files / "s.rdst"], "Permission denied")
    assert "`IN`" in err and str(files / "s.rdst") in err


# --------------------------------------------------------------------------- numeric arguments

BAD_ARGS = [
    (["mean-estimate", "--method", "qsgd", "--dim", "8", "--clients", "2", "--seed", "-1"], "--seed"),
    (["fedpm", "estimate", "--dim", "8", "--clients", "2", "--seed", "-1"], "--seed"),
    (["fedpm", "estimate", "--dim", "8", "--clients", "2", "--seed", str(2**64)], "--seed"),
    (["fedpm", "estimate", "--dim", "0", "--clients", "2"], "--dim"),
    (["mean-estimate", "--method", "eden", "--dim", "8", "--clients", "2", "--bits", "nan"], "--bits"),
    (["mean-estimate", "--method", "qsgd", "--dim", "8", "--clients", "2", "--bits", "1e308"], "--bits"),
    (["mean-estimate", "--method", "qsgd", "--dim", str(10**9), "--clients", "2"], "--dim"),
    (["refine", "--block", "4", "--stages", "2", "--rate", "1e308"], "--rate"),
    (["refine", "--block", "4", "--stages", "2", "--rate", "nan"], "--rate"),
    (["refine", "--block", "4", "--stages", "2", "--rate", "-1"], "--rate"),
    (["refine", "--block", "4", "--stages", "2", "--rate", "1", "--blocks", str(10**10)], "--blocks"),
    (["refine", "--block", "4", "--stages", "0", "--rate", "1"], "--stages"),
    (["refine", "--block", "4", "--stages", "2", "--rate", "1", "--lam", "inf"], "--lam"),
    (["refine", "--block", "4", "--stages", "2", "--rate", "1", "--seed", "-5"], "--seed"),
    (["bound", "{w}", "{w}", "--restarts", str(10**9)], "--restarts"),
    (["bound", "{w}", "{w}", "--steps", "-1"], "--steps"),
    (["bound", "{w}", "{w}", "--seed", "-1"], "--seed"),
    (["repro", "surp", "--seeds", str(10**9), "--out", "{tmp}/r"], "--seeds"),
    (["repro", "surp", "--seeds", "0", "--out", "{tmp}/r"], "--seeds"),
    (["rd", "ba", "--source", "gaussian", "--variance", "1", "--distortion", "0.5", "--max-iter", "0"], "--max-iter"),
    (["rd", "ba", "--source", "gaussian", "--variance", "1", "--distortion", "0.5", "--tol", "nan"], "--tol"),
    (["rd", "ba", "--source", "gaussian", "--variance", "nan", "--distortion", "0.5"], "--variance"),
    (["rd", "ba", "--source", "laplace", "--lam", "1", "--slope", "inf"], "--slope"),
    (["rd", "ba", "--source", "laplace", "--lam", "1", "--slope", "2"], "--slope"),
    (["rd", "ba", "--source", "laplace", "--lam", "1e-320", "--slope", "-1"], "--lam"),
    (["rd", "ba", "--source", "laplace", "--lam", "1", "--distortion=-inf"], "--distortion"),
    (["rd", "ba", "--source", "laplace", "--lam", "1", "--slope", "-1", "--grid", "1"], "--grid"),
    (["rd", "closed", "--source", "laplace", "--lam", "inf", "--distortion", "0.5"], "--lam"),
    (["rd", "closed", "--source", "gaussian", "--variance", "1", "--rate", "nan"], "--rate"),
    (["rd", "closed", "--source", "bernoulli", "--p", "2", "--distortion", "0.1"], "--p"),
    (["quant", "encode", "{w}", "-o", "{tmp}/x.rdst", "--rate", "nan"], "--rate"),
    (["quant", "encode", "{w}", "-o", "{tmp}/x.rdst", "--rate", "1e308"], "--rate"),
    (["quant", "encode", "{w}", "-o", "{tmp}/x.rdst", "--distortion", "-1"], "--distortion"),
    (["quant", "encode", "{w}", "-o", "{tmp}/x.rdst", "--rate", "3", "--states", "3"], "--states"),
    (["quant", "encode", "{w}", "-o", "{tmp}/x.rdst", "--rate", "3", "--method", "trellis", "--L", "99"], "--L"),
    (["prune", "{w}", "-o", "{tmp}/x.npz", "--sparsity", "nan"], "--sparsity"),
    (["prune", "{w}", "-o", "{tmp}/x.npz", "--sparsity", "1"], "--sparsity"),
    (["prune", "{w}", "-o", "{tmp}/x.npz", "--sparsity", "0.5", "--value-bits", "0"], "--value-bits"),
    (["surp", "encode", "{w}", "-o", "{tmp}/x.rdst", "--sparsity", "1.5"], "--sparsity"),
    (["surp", "encode", "{w}", "-o", "{tmp}/x.rdst", "--sparsity", "nan"], "--sparsity"),
    (["surp", "encode", "{w}", "-o", "{tmp}/x.rdst", "--sparsity", "0.5", "--seed", "-1"], "--seed"),
    (["surp", "encode", "{w}", "-o", "{tmp}/x.rdst", "--sparsity", "0.5", "--alpha", "-1"], "--alpha"),
    (["surp", "encode", "{w}", "-o", "{tmp}/x.rdst", "--sparsity", "0.5", "--algorithm", "parallel",
      "--gamma", "2"], "--gamma"),
    (["surp", "decode", "{s}", "-o", "{tmp}/x.npz", "--sparsity", "inf"], "--sparsity"),
    (["frontier", "{w}", "--out", "{tmp}/f", "--rates", "1,nan"], "--rates"),
    (["frontier", "{w}", "--out", "{tmp}/f", "--rates", "1e308"], "--rates"),
    (["frontier", "{w}", "--out", "{tmp}/f", "--methods", "nope"], "--methods"),
    (["bound", "{w}", "{w}", "--restarts", "1e9"], "--restarts"),  # argparse's own message, one line too
]


@pytest.mark.parametrize("argv, option", BAD_ARGS, ids=[f"{a[0]}-{o}-{i}" for i, (a, o) in enumerate(BAD_ARGS)])
def test_bad_numeric_argument(tmp_path, files, capsys, argv, option):
    """Negative, NaN, infinite, huge or zero values: exit 2, one line naming the option, nothing written."""
    argv = [a.format(w=files / "w.npz", s=files / "s.rdst", tmp=tmp_path) for a in argv]
    _one_line_fail(capsys, files, argv, option)
    assert not [p for p in tmp_path.iterdir() if p.name != "in"]


def test_max_iter_is_a_total_budget(capsys):
    """`rd ba --distortion ... --max-iter N` stops after at most N iterations over the whole slope search."""
    assert main(["rd", "ba", "--source", "gaussian", "--variance", "1", "--distortion", "0.99", "--max-iter", "300",
                 "--grid", "401", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 < out["iterations"] <= 300


# --------------------------------------------------------------------------- the boundary


@pytest.mark.parametrize("exc, code, needle", [
    (PermissionError(errno.EACCES, "Permission denied", "/somewhere/w.npz"), 2, "'/somewhere/w.npz': Permission"),
    (OSError(errno.ENOSPC, "No space left on device", "/full/x.rdst"), 2, "No space left"),
    (OSError(errno.ENAMETOOLONG, "File name too long"), 2, "File name too long"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/d"), 2, "'/d': Is a directory"),
    (MemoryError(), 2, "out of memory"),
    (TypeError("unsupported operand\nsecond line"), 1, "internal error (TypeError: unsupported operand second"),
    (AttributeError("x"), 1, "--debug"),
])
def test_boundary_turns_exceptions_into_one_line(monkeypatch, capsys, exc, code, needle):
    """OSError and MemoryError exit 2 naming the path; anything unexpected exits 1 asking for --debug."""
    import ratedist._cli.info as info

    def boom(args):
        raise exc

    monkeypatch.setattr(info, "run", boom)
    err = _run(capsys, ["info"], code)
    assert needle in err and err.startswith("ratedist info: ")


def test_debug_reraises_and_interrupt_is_130(monkeypatch, capsys):
    """--debug (before or after the verb) shows the real exception; Ctrl-C exits 130."""
    import ratedist._cli.info as info

    def boom(args):
        raise TypeError("internal")

    monkeypatch.setattr(info, "run", boom)
    for argv in (["--debug", "info"], ["info", "--debug"]):
        with pytest.raises(TypeError, match="internal"):
            main(argv)

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "run", interrupt)
    assert main(["info"]) == 130
    assert capsys.readouterr().err.strip() == "ratedist: interrupted"


def test_full_disk_leaves_no_file(tmp_path, files, capsys, monkeypatch):
    """ENOSPC while writing the stream: one line naming `-o`, no output and no temporary file left."""
    import ratedist.coding.container as container

    real = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(container.os, "fsync", full)
    try:
        err = _one_line_fail(capsys, files, ["quant", "encode", files / "w.npz", "-o", tmp_path / "x.rdst",
                                             "--rate", "3", "--no-bound"], "No space left")
    finally:
        monkeypatch.setattr(container.os, "fsync", real)
    assert "`-o`" in err and [p.name for p in tmp_path.iterdir()] == ["in"]


def test_encoder_that_refuses_writes_nothing(tmp_path, capsys):
    """Weights the encoder rejects (NaN) give one line and no output file, not half a stream."""
    w = _weights()
    w["fc1.weight"][0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **w)  # save_weights itself refuses NaN
    for verb, extra in (("surp", ["--sparsity", "0.5", "--quiet"]), ("quant", ["--rate", "3", "--no-bound"])):
        err = _run(capsys, [verb, "encode", tmp_path / "nan.npz", "-o", tmp_path / "x.rdst", *extra], 2)
        assert "fc1.weight" in err and "NaN" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.npz"]


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "ratedist.cli", *map(str, args)], env=env, **kw)


def test_closed_and_broken_stdout(tmp_path):
    """`ratedist info >&-` and a reader that has gone away: exit 0, no traceback."""
    r = _cli("info", stdout=None, stderr=subprocess.PIPE, text=True, pass_fds=(),
             preexec_fn=lambda: os.close(1))
    assert r.returncode == 0 and r.stderr == ""
    p = subprocess.Popen([sys.executable, "-m", "ratedist.cli", "info", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    p.stdout.close()  # the reader leaves before the report is printed
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0 and b"Traceback" not in err and b"Exception ignored" not in err


def test_closed_stderr_does_not_stop_the_encode(tmp_path, files):
    """Progress bars into a closed or broken stderr: the stream is still written, and decodes."""
    out = tmp_path / "m.rdst"
    r = _cli("surp", "encode", files / "w.npz", "-o", out, "--sparsity", "0.5", stdout=subprocess.DEVNULL,
             preexec_fn=lambda: os.close(2))
    assert r.returncode == 0 and out.is_file()
    from ratedist import surp

    assert set(surp.decode(out.read_bytes())) == set(_weights())
    out.unlink()
    p = subprocess.Popen([sys.executable, "-m", "ratedist.cli", "surp", "encode", str(files / "w.npz"), "-o", str(out),
                          "--sparsity", "0.5"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    p.stderr.close()  # a broken pipe: every progress update fails with EPIPE
    assert p.wait(timeout=300) == 0 and out.is_file()
    assert set(surp.decode(out.read_bytes())) == set(_weights())


# --------------------------------------------------------------------------- loaders and checkpoints


def test_bound_refuses_different_tensor_names(tmp_path, files, capsys):
    """`bound a b` whose tensors are named differently names the keys that differ, on one line."""
    w = _weights()
    w["fc3.weight"] = w.pop("fc2.weight")
    save_weights(tmp_path / "other.npz", w)
    err = _one_line_fail(capsys, files, ["bound", files / "w.npz", tmp_path / "other.npz"], "'fc2.weight'")
    assert "'fc3.weight'" in err


def test_duplicate_npz_member_refused(tmp_path, files, capsys):
    """An .npz holding one name twice is refused, naming it (no copy silently wins)."""
    import warnings
    import zipfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name while writing the test file
        with zipfile.ZipFile(tmp_path / "dup.npz", "w") as z:
            for _ in range(2):
                with z.open("a.npy", "w") as fh:
                    np.lib.format.write_array(fh, np.ones(3, np.float32))
    _one_line_fail(capsys, files, ["prune", tmp_path / "dup.npz", "-o", tmp_path / "o.npz", "--sparsity", "0.5"],
                   "'a' twice")


def test_zero_d_and_longdouble_survive_prune(tmp_path, capsys):
    """A 0-d tensor keeps shape () and a longdouble .npz is written back in its dtype."""
    w = _weights()
    w["scale"] = np.array(2.5, np.longdouble)
    w["fc2.weight"] = w["fc2.weight"].astype(np.longdouble)
    save_weights(tmp_path / "ld.npz", w)
    _json(capsys, ["prune", tmp_path / "ld.npz", "-o", tmp_path / "o.npz", "--sparsity", "0.5"])
    back = load_weights(tmp_path / "o.npz")
    assert back["scale"].shape == () and back["scale"].dtype == np.longdouble and back["scale"] == 2.5
    assert back["fc2.weight"].dtype == np.longdouble
    err = _run(capsys, ["prune", tmp_path / "ld.npz", "-o", tmp_path / "o.safetensors", "--sparsity", "0.5"], 2)
    assert "float128" in err or "longdouble" in err
    assert not (tmp_path / "o.safetensors").exists()


def _bf16_shards(folder: Path) -> dict[str, np.ndarray]:
    w = {k: v.astype(ml_dtypes.bfloat16) for k, v in _weights(3).items()}
    save_weights(folder, w, max_shard_bytes=3000)  # several shards plus model.safetensors.index.json
    return w


def test_prune_sharded_bf16_checkpoint_into_shards(tmp_path, capsys):
    """A bf16 shard set in, `-o DIR` out: same shard names, index, key order and bfloat16; the report says bf16."""
    _bf16_shards(tmp_path / "ck")
    shards = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert len(shards) > 2
    rep = _json(capsys, ["prune", tmp_path / "ck", "-o", tmp_path / "out", "--sparsity", "0.5"])
    assert set(rep["stored_dtypes"]) == {"bfloat16"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == shards
    with open_weights(tmp_path / "out") as a, open_weights(tmp_path / "ck") as b:
        assert list(a) == list(b) and set(a.stored_dtypes.values()) == {"bfloat16"}
        assert [a.shard_of(n) for n in a] == [b.shard_of(n) for n in b]
    # the same through the index path, into one file
    _run(capsys, ["prune", tmp_path / "ck" / "model.safetensors.index.json", "-o", tmp_path / "one.safetensors",
                  "--sparsity", "0.5"], 0)
    with open_weights(tmp_path / "one.safetensors") as one:
        assert set(one.stored_dtypes.values()) == {"bfloat16"}


@pytest.mark.parametrize("verb", ["surp", "quant"])
def test_decode_like_writes_the_input_layout(tmp_path, capsys, verb):
    """encode a bf16 shard set; decode with `--like` into `-o DIR/x.index.json`: bf16 shards plus that index."""
    _bf16_shards(tmp_path / "ck")
    extra = ["--sparsity", "0.5", "--quiet"] if verb == "surp" else ["--rate", "3", "--no-bound"]
    rep = _json(capsys, [verb, "encode", tmp_path / "ck", "-o", tmp_path / "m.rdst", *extra])
    assert rep["stored_dtypes"] == {"bfloat16": N_PARAMS}
    rep = _json(capsys, [verb, "decode", tmp_path / "m.rdst", "-o", tmp_path / "dec" / "model.safetensors.index.json",
                         "--like", tmp_path / "ck"])
    assert rep["written_dtypes"] == {"bfloat16": N_PARAMS}
    with open_weights(tmp_path / "dec") as a, open_weights(tmp_path / "ck") as b:
        assert list(a) == list(b) and [a.shard_of(n) for n in a] == [b.shard_of(n) for n in b]
        assert set(a.stored_dtypes.values()) == {"bfloat16"}


def test_help_says_checkpoints_are_accepted():
    """Every verb that reads weights says, in its help, that it takes a file, an index or a directory."""
    from ratedist.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "verb").choices
    for path in (["prune"], ["bound"], ["frontier"], ["surp", "encode"], ["quant", "encode"]):
        p = sub[path[0]]
        if len(path) == 2:
            p = next(a for a in p._actions if a.dest.endswith("_verb")).choices[path[1]]
        text = p.format_help()
        assert "index.json" in text and "directory" in text, path


@pytest.mark.parametrize("budget", [1, 7, 120])
def test_rate_at_distortion_total_budget(budget):
    """`max_total_iter` bounds the BA iterations of the whole slope search; an unfinished search warns."""
    from ratedist import rd
    from ratedist.errors import ConvergenceWarning

    g = rd.discretize_gaussian(1.0, 16 / 400, 8.0)
    with pytest.warns(ConvergenceWarning):
        res = rd.rate_at_distortion_grid(g.points, g.pmf, 0.99, distortion_type="squared", max_total_iter=budget)
    assert res.iterations == budget and not res.converged
    assert res.rate_lower <= res.rate
