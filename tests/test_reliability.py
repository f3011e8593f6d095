"""Reliability of the real ``ctxfusion`` command (subprocesses): bad input is one line
``error: ...`` with exit status 2 before anything is written, an internal error is one line
with exit status 1 (the traceback only with ``--debug``), and a run killed mid-way says so in
run.json and in its report, and resumes to the same results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctxfusion.io import remove_stale_temp_files

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "configs" / "demo-full.yaml")
ONE_DATASET = ("datasets=[{name: a, kind: scenes, context_strength: 0.8, num_train: 48, "
               "num_test: 24, seed: 5}]")
TWO_DATASETS = ("datasets=[{name: a, kind: scenes, context_strength: 0.8, num_train: 48, "
                "num_test: 24, seed: 5}, {name: b, kind: scenes, context_strength: 0.0, "
                "num_train: 480, num_test: 240, seed: 6}]")  # b: time to interrupt it
TINY = ["steps=[]", "heads.epochs=3", "heads.alphas=[1]", "batch_size=64",
        "whitebox.adaptive=[]"]


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "ctxfusion.cli", *args]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "CTXFUSION_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def cli(args: list[str], home: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``ctxfusion ARGS`` in a subprocess with ``$CTXFUSION_HOME`` = ``home``."""
    return subprocess.run(_command(args), capture_output=True, text=True, env=_env(home),
                          timeout=timeout, check=False)


def run_args(out: Path, *overrides: str, config: str = DEMO) -> list[str]:
    """``run CONFIG --out OUT --set ...`` with the tiny settings and the overrides."""
    args = ["run", config, "--out", str(out)]
    for override in [ONE_DATASET, *TINY, *overrides]:
        args += ["--set", override]
    return args


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_user_error(result: subprocess.CompletedProcess, *culprits: str,
                      status: int = 2) -> None:
    """One ``error:`` line naming every culprit, the exit status, no traceback."""
    text = result.stdout + result.stderr
    assert result.returncode == status, text
    assert "Traceback" not in text, text
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, text
    for culprit in culprits:
        assert culprit in errors[0], errors[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_out_is_an_existing_file(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "afile"
    out.write_text("mine")
    assert_user_error(cli(run_args(out), home), f"--out {out}", "is a file, not a folder")
    assert out.read_text() == "mine" and not home.exists()


def test_out_cannot_be_created(tmp_path: Path, home: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: a path under a file
            parent = tmp_path / "somefile"
            parent.write_text("")
            culprit = "is a file, so no folder can be created under it"
        else:
            parent, culprit = locked, "is not writable"
        before = _listing(tmp_path)
        result = cli(run_args(parent / "run"), home)
        assert_user_error(result, f"--out {parent / 'run'}", culprit)
        assert _listing(tmp_path) == before
    finally:
        locked.chmod(0o700)


def test_out_is_a_folder_of_something_else(tmp_path: Path, home: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    assert_user_error(cli(run_args(other), home), f"--out {other}",
                      "not a ctxfusion run directory")
    (other / "thesis.tex").unlink()
    (other / "run.json").write_text(json.dumps({"experiment": "another"}))
    assert_user_error(cli(run_args(other), home), "holds a run of experiment 'another'")
    assert _listing(other) == {"run.json"}


def test_cache_home_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("")
    out = tmp_path / "run"
    assert_user_error(cli(run_args(out), home), f"$CTXFUSION_HOME = {home}",
                      "is a file, not a folder")
    assert not out.exists()


@pytest.mark.parametrize("kind", ["binary", "folder"])
def test_config_that_is_not_a_text_file(tmp_path: Path, home: Path, kind: str) -> None:
    config = tmp_path / "config.yaml"
    if kind == "binary":
        config.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
        culprit = "not a text file"
    else:
        config.mkdir()
        culprit = "is a folder, not a config file"
    out = tmp_path / "run"
    assert_user_error(cli(["run", str(config), "--out", str(out)], home), str(config), culprit)
    assert not out.exists()


#: one subprocess runs the CLI's ``main`` on each argument list (one torch import, not one
#: per case): per case, the exit status and what it printed on stderr, as JSON
MANY = """import contextlib, io, json, sys
from ctxfusion.cli import main
results = []
for args in json.loads(sys.argv[1]):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = main(args)
    results.append([status, err.getvalue()])
print(json.dumps(results))
"""


def cli_many(argv: list[list[str]], home: Path) -> list[subprocess.CompletedProcess]:
    """Each argument list through the real CLI's ``main``, all in one subprocess."""
    proc = subprocess.run([sys.executable, "-c", MANY, json.dumps(argv)], capture_output=True,
                          text=True, env=_env(home), timeout=300, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return [subprocess.CompletedProcess(args, status, "", stderr)
            for args, (status, stderr) in zip(argv, json.loads(proc.stdout), strict=True)]


def test_epsilons_must_be_finite_and_at_most_one_pixel(tmp_path: Path, home: Path) -> None:
    cases = {(key, value): tmp_path / f"run-{key}-{value}"
             for key in ("fgsm.epsilons", "whitebox.epsilons") for value in (".nan", ".inf", "5")}
    argv = [run_args(out, f"{key}=[0.01, {value}]") for (key, value), out in cases.items()]
    for ((key, value), out), result in zip(cases.items(), cli_many(argv, home), strict=True):
        shown = {".nan": "nan", ".inf": "inf", "5": "5.0"}[value]
        assert_user_error(result, f"{key}[1] = {shown}: an eps must be a finite number in "
                          "[0, 1] (pixel space)")
        assert not out.exists()


def test_normalised_eps_is_checked_in_pixel_space(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "run"
    result = cli(run_args(out, "fgsm.eps_space=normalized", "fgsm.epsilons=[0.1, 10]"), home)
    assert_user_error(result, "fgsm.epsilons[1] = 10.0 (normalized space)", "in pixel space")
    assert not out.exists()


def test_unknown_stream_and_missing_weights(tmp_path: Path, home: Path) -> None:
    out, missing = tmp_path / "run", tmp_path / "missing.safetensors"
    unknown, absent = cli_many([run_args(out, "streams.bg.name=no-such-net"),
                                run_args(out, f"streams.fg.weights={missing}")], home)
    assert_user_error(unknown, "streams.bg.name = 'no-such-net'", "unknown stream")
    assert_user_error(absent, "streams.fg", str(missing), "does not exist")
    assert not out.exists()


INTERNAL_ERROR = ("import ctxfusion.cli.run_cmd as run_cmd\n"
                  "run_cmd.main = lambda args: 1 / 0  # a bug inside a subcommand\n"
                  "from ctxfusion.cli import main\n"
                  "raise SystemExit(main(sys.argv[1:]))\n")


def test_internal_error_is_one_line_and_debug_shows_the_traceback(home: Path) -> None:
    command = [sys.executable, "-c", "import sys\n" + INTERNAL_ERROR]
    plain = subprocess.run([*command, "run", "x.yaml"], capture_output=True, text=True,
                           env=_env(home), timeout=120, check=False)
    assert_user_error(plain, "internal error (ZeroDivisionError: division by zero) while "
                      "running 'ctxfusion run'", "rerun with --debug", status=1)
    debug = subprocess.run([*command, "--debug", "run", "x.yaml"], capture_output=True,
                           text=True, env=_env(home), timeout=120, check=False)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "ZeroDivisionError" in debug.stderr


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / f"results.csv.tmp-{dead}", tmp_path / "sub" / f"x.safetensors.tmp-{dead}"]
    (tmp_path / f"images.tmp-{dead}").mkdir()  # a folder being filled (CIFAR-10 images)
    (tmp_path / f"images.tmp-{dead}" / "0.png").write_bytes(b"")
    kept = [tmp_path / f"run.json.tmp-{alive}", tmp_path / "notes.tmp-x"]
    for path in stale + kept:
        path.write_text("")
    removed = remove_stale_temp_files(tmp_path)
    assert sorted(removed) == sorted([*stale, tmp_path / f"images.tmp-{dead}"])
    assert all(p.exists() for p in kept) and not (tmp_path / f"images.tmp-{dead}").exists()
    assert remove_stale_temp_files(tmp_path / "missing") == []


def _status(out: Path) -> dict:
    try:
        return json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C handled as a fresh shell would (a child inherits an
    ignored or blocked SIGINT from the test process, and Python then never raises
    KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _interrupt_after_first_dataset(args: list[str], home: Path, out: Path) -> None:
    """Start the run, wait until run.json lists its first dataset, then SIGINT it."""
    proc = subprocess.Popen(_command(args), env=_env(home), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 120
    while "a" not in _status(out).get("datasets", {}) and proc.poll() is None:
        assert time.monotonic() < deadline, "the first dataset did not finish in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr


def _cached(home: Path) -> int:
    """How many feature files the cache holds (complete ones: written atomically)."""
    folder = home / "features"
    return len(list(folder.glob("*.safetensors"))) if folder.is_dir() else 0


def _kill_when(args: list[str], home: Path, cached: int) -> None:
    """Start the run and kill -9 it as soon as the cache holds ``cached`` feature files."""
    proc = subprocess.Popen(_command(args), env=_env(home), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while _cached(home) < cached and proc.poll() is None:
        assert time.monotonic() < deadline, "the kill point was not reached in time"
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before its kill point"
    proc.kill()
    proc.wait(timeout=30)


def test_an_interrupted_run_says_so_and_resumes(tmp_path: Path, home: Path) -> None:
    """Stopped at three points (kill -9 inside the first dataset, Ctrl-C between the two,
    kill -9 inside the second), each time resumed: the results are byte-identical to those
    of an uninterrupted run."""
    out, reference = tmp_path / "run", tmp_path / "reference"
    args = run_args(out, TWO_DATASETS)
    _kill_when(args, home, cached=2)  # inside dataset a, some of its features cached
    assert _status(out).get("status") == "running"  # what a killed process leaves
    _interrupt_after_first_dataset(args, home, out)
    info = _status(out)
    assert info["status"] == "interrupted" and info["error"]
    assert list(info["datasets"]) == ["a"]

    assert_user_error(cli(["report", str(out)], home), f"{out}: the run is not complete "
                      "(status: interrupted)", "--partial")
    report = cli(["report", str(out), "--partial"], home)
    assert report.returncode == 0, report.stderr
    assert f"warning: {out} is incomplete (status: interrupted)" in report.stderr
    assert "datasets not finished: b" in report.stderr
    page = (out / "report.html").read_text()
    banner = page[page.index("<div class='incomplete'"):]
    assert page.index("<div class='incomplete'") < page.index("<nav>")
    assert "This run is incomplete: a partial report" in banner and "<li>b</li>" in banner
    assert "run (partial)" in (out / "claims.md").read_text()

    _kill_when(args, home, cached=_cached(home) + 2)  # inside dataset b
    dead = _dead_pid()
    stale = [out / f"results.csv.tmp-{dead}", home / "features" / f"x.tmp-{dead}"]
    for path in stale:
        path.write_text("partial")
    resumed = cli(args, home)
    assert resumed.returncode == 0, resumed.stderr
    assert not any(path.exists() for path in stale)
    assert _status(out)["status"] == "complete" and "error" not in _status(out)
    assert "class='incomplete'" not in (out / "report.html").read_text()

    uninterrupted = cli([*run_args(reference, TWO_DATASETS), "--no-report"], home)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()


def test_a_failed_run_records_the_error(tmp_path: Path, monkeypatch) -> None:
    """In-process: an error after the run directory exists leaves status ``failed``."""
    from ctxfusion.config import load_config
    from ctxfusion.errors import DataError
    from ctxfusion.experiments import runner

    def broken(*args: object) -> None:
        raise DataError("img/7.png: cannot be decoded")

    monkeypatch.setenv("CTXFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(runner, "_run_dataset", broken)
    with pytest.raises(DataError):
        runner.run_experiment(load_config(DEMO, [ONE_DATASET, *TINY]), tmp_path / "run")
    info = _status(tmp_path / "run")
    assert info["status"] == "failed" and info["error"] == "img/7.png: cannot be decoded"
    assert info["datasets"] == {} and (tmp_path / "run" / "config.yaml").is_file()


def test_out_of_memory_names_the_settings_to_lower(tmp_path: Path, monkeypatch) -> None:
    """A device out of memory ends the run with what to lower, not a traceback; run.json
    records it and the CLI exits with status 2."""
    import torch

    from ctxfusion.cli import main
    from ctxfusion.experiments import runner

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setenv("CTXFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(runner, "split_features", out_of_memory)
    code = main(run_args(tmp_path / "run"))
    assert code == 2
    error = _status(tmp_path / "run")["error"]
    assert "out of memory on cpu with batch_size = 64" in error
    assert "lower batch_size / gradient_batch_size" in error
    assert "Tried to allocate 2.00 GiB" in error
