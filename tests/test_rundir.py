"""One run directory, one writer, no silent overwrite; readers check what they read.

Through the real ``ctxfusion`` command (subprocesses), on one finished tiny run shared by the
module (copied where a test changes it)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_reliability import _command, _env, assert_user_error, cli, cli_many, run_args


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the lock) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a complete tiny run directory, its CTXFUSION_HOME); do not change it: copy it."""
    root = tmp_path_factory.mktemp("finished")
    home, out = root / "home", root / "run"
    result = cli(run_args(out), home)
    assert result.returncode == 0, result.stderr
    return out, home


def _copy(finished: tuple[Path, Path], tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished[0], out)
    return out


@pytest.mark.slow
def test_changed_config_is_refused_and_the_same_config_is_complete(
        finished: tuple[Path, Path], tmp_path: Path) -> None:
    out, home = _copy(finished, tmp_path), finished[1]
    before = _snapshot(out)
    seed, eps, same, other = cli_many([
        run_args(out, "seed=3"),
        run_args(out, "fgsm.epsilons=[0, 0.1]", "heads.epochs=4"),
        run_args(out),
        run_args(out, "experiment=other"),
    ], home)
    assert_user_error(seed, f"--out {out} holds a run (status: complete) whose config differs",
                      "seed: 0 -> 3", "give a new --out", "--overwrite")
    assert_user_error(eps, "fgsm.epsilons: [0.0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08] -> "
                      "[0.0, 0.1]", "heads.epochs: 3 -> 4")
    assert same.returncode == 0 and "is already complete with this config" in same.stderr
    assert_user_error(other, "holds a run of experiment 'demo-full', not 'other'", "--overwrite")
    assert _snapshot(out) == before  # results.csv included: byte-identical


def _wait_for_lock(out: Path, proc: subprocess.Popen, timeout: float = 120) -> int:
    """The pid written into ``out/.lock`` once ``proc`` holds it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            text = (out / ".lock").read_text().strip()
        except OSError:
            text = ""
        if text.isdigit() and int(text) == proc.pid:
            return proc.pid
        time.sleep(0.05)
    raise AssertionError(f"the first run did not lock {out}: {proc.poll()}")


@pytest.mark.slow
def test_one_writer_and_overwrite_moves_the_old_run_aside(
        finished: tuple[Path, Path], tmp_path: Path) -> None:
    """Two real processes: the first (``--overwrite`` with another seed) holds the lock and
    finishes complete; the second, started while it runs, exits 2 at once naming its pid;
    the old run is moved aside byte for byte. A third process, into another ``--out`` with
    the same config and the same feature cache, runs at the same time as the first: both
    finish with the same results."""
    out, home = _copy(finished, tmp_path), finished[1]
    before = _snapshot(out)
    args = [*run_args(out, "seed=1"), "--overwrite"]
    first = subprocess.Popen(_command(args), env=_env(home), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    pid = _wait_for_lock(out, first)
    first.send_signal(signal.SIGSTOP)  # the tiny run could finish before the second starts
    try:
        started = time.monotonic()
        second = cli(args, home)
        took = time.monotonic() - started
    finally:
        first.send_signal(signal.SIGCONT)
    beside, log = tmp_path / "beside", (tmp_path / "third.log").open("w")
    third = subprocess.Popen(_command(run_args(beside, "seed=1")), env=_env(home),
                             stdout=subprocess.DEVNULL, stderr=log)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert_user_error(second, f"--out {out}: another ctxfusion run is writing into it "
                      f"(pid {pid})", "give another --out")
    # the lock is probed before the slow imports of a run: 0.2-0.3 s measured on an idle
    # machine (docs/reliability.md); the bound only catches a second writer that waits
    assert took < 30, took
    assert third.wait(timeout=300) == 0, (tmp_path / "third.log").read_text()
    log.close()
    assert (beside / "results.csv").read_bytes() == (out / "results.csv").read_bytes()
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert json.loads((out / "run.json").read_text())["seed"] == 1
    (aside,) = tmp_path.glob("run.replaced-*")
    assert _snapshot(aside) == before
    assert "was moved to" in stderr


@pytest.mark.slow
def test_readers_refuse_what_does_not_match_run_json(finished: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    """report and claims: no run.json, results.csv cut at a line boundary or edited, a run
    not complete (allowed with --partial, labelled partial), claims --out on a file."""
    home = finished[1]
    info = json.loads((finished[0] / "run.json").read_text())
    assert info["rows"]["results"] > 2 and len(info["results_sha256"]) == 64
    dirs = {name: _copy(finished, tmp_path / name) for name in
            ("norunjson", "cut", "edited", "running", "fine")}
    (dirs["norunjson"] / "run.json").unlink()
    lines = (dirs["cut"] / "results.csv").read_text().splitlines(keepends=True)
    (dirs["cut"] / "results.csv").write_text("".join(lines[:-2]))
    text = (dirs["edited"] / "results.csv").read_text()
    (dirs["edited"] / "results.csv").write_text(text.replace(",0.", ",1.", 1))
    running = json.loads((dirs["running"] / "run.json").read_text())
    (dirs["running"] / "run.json").write_text(json.dumps({**running, "status": "running"}))
    afile = tmp_path / "afile"
    afile.write_text("keep")
    before = {name: (d / "results.csv").read_bytes() for name, d in dirs.items()}
    results = cli_many([
        ["report", str(dirs["norunjson"])], ["claims", str(dirs["norunjson"])],
        ["report", str(dirs["cut"])], ["claims", str(dirs["cut"])],
        ["claims", str(dirs["edited"])],
        ["report", str(dirs["running"])], ["claims", str(dirs["running"])],
        ["claims", str(dirs["fine"]), "--out", str(afile)],
        ["claims", str(dirs["running"]), "--partial"],
    ], home)
    for result in results[:2]:
        assert_user_error(result, f"{dirs['norunjson']}: no run.json")
    for result in results[2:4]:
        assert_user_error(result, f"{dirs['cut'] / 'results.csv'}: {len(lines) - 3} rows, but",
                          f"records {len(lines) - 1}")
    assert_user_error(results[4], "its content differs from what the run wrote")
    for result in results[5:7]:
        assert_user_error(result, "the run is not complete (status: running)", "--partial")
    assert_user_error(results[7], f"--out {afile}: is a file, not a folder")
    assert results[8].returncode == 0, results[8].stderr
    assert "run (partial) / a" in (dirs["running"] / "claims.md").read_text()
    assert afile.read_text() == "keep"
    assert {name: (d / "results.csv").read_bytes() for name, d in dirs.items()} == before


def test_names_that_would_leave_their_root_are_refused(tmp_path: Path) -> None:
    """``experiment`` (runs/<experiment>) and dataset names (cache folders) stay inside."""
    home = tmp_path / "home"
    demo = run_args(tmp_path / "x")[1]
    escape, dataset, absolute = cli_many([
        ["run", demo, "--set", "experiment=../../escape"],
        run_args(tmp_path / "run", "datasets[0].name=../../x"),
        ["run", demo, "--set", "experiment=/tmp/abs"],
    ], home)
    assert_user_error(escape, "experiment = '../../escape': not a plain name (the run "
                      "directory runs/<experiment>)")
    assert_user_error(dataset, "datasets[0].name = '../../x'")
    assert_user_error(absolute, "experiment = '/tmp/abs'")
    assert not home.exists() and not (tmp_path / "run").exists()


def test_duplicate_keys_and_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    demo = Path(run_args(tmp_path / "x")[1])
    lines = demo.read_text().splitlines()
    seed_line = next(i for i, line in enumerate(lines) if line.startswith("seed:")) + 1
    twice = tmp_path / "twice.yaml"
    twice.write_text("\n".join([*lines, "seed: 4", ""]))
    nested = tmp_path / "nested.yaml"
    nested.write_text(demo.read_text().replace("blur:\n", "blur:\n  mode: image\n", 1))
    results = cli_many([
        ["run", str(twice), "--out", str(tmp_path / "run")],
        ["run", str(nested), "--out", str(tmp_path / "run")],
        *[run_args(tmp_path / "run", f"{key}={value}")
          for key, value in (("heads.lr", ".inf"), ("heads.lr", ".nan"),
                             ("pca.sigma", ".inf"), ("fusion.dropout", ".nan"))],
    ], home)
    assert_user_error(results[0], f"{twice}: key 'seed' is given twice (line {seed_line} and "
                      f"line {len(lines) + 1})")
    assert_user_error(results[1], f"{nested}: key 'mode' is given twice")
    for result, key in zip(results[2:], ("heads.lr = inf", "heads.lr = nan", "pca.sigma = inf",
                                         "fusion.dropout = nan"), strict=True):
        assert_user_error(result, key)
    assert not (tmp_path / "run").exists() and not home.exists()


def _damaged_weights(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Copies of the shipped object stream's weights, each damaged one way, and the words the
    refusal must name (the file is named by the test)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from ctxfusion.scenes.streams import WEIGHTS_DIR

    shipped = WEIGHTS_DIR / "scenes-object-resnet18.safetensors"
    with safe_open(str(shipped), framework="pt") as handle:
        metadata = handle.metadata()
        state = {k: handle.get_tensor(k) for k in handle.keys()}
    conv = next(k for k in state if k.endswith("conv1.weight"))
    cases = {
        "nan": ({**state, "fc.bias": state["fc.bias"].clone().fill_(float("nan"))},
                "tensor fc.bias holds NaN or infinite values"),
        "inf": ({**state, conv: state[conv].clone().fill_(float("inf"))},
                f"tensor {conv} holds NaN or infinite values"),
        "shape": ({**state, "fc.bias": state["fc.bias"][:-1].clone()},
                  f"fc.bias: expected ({len(state['fc.bias'])},), found "
                  f"({len(state['fc.bias']) - 1},)"),
    }
    files = {}
    for name, (tensors, words) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
        files[name] = (path, words)
    return files


def test_damaged_weights_are_refused_before_any_work(tmp_path: Path) -> None:
    """A weights file with NaN or infinite tensors, or with a tensor of the wrong shape, is
    refused at validation (exit 2, naming the config key, the file, the tensor and the
    shapes), before the run directory or the cache is created."""
    home, files = tmp_path / "home", _damaged_weights(tmp_path)
    results = cli_many([run_args(tmp_path / "run", f"streams.fg.weights={path}")
                        for path, _ in files.values()], home)
    for result, (path, words) in zip(results, files.values(), strict=True):
        assert_user_error(result, "streams.fg (scenes-object-resnet18)", str(path), words)
    assert not (tmp_path / "run").exists() and not (home / "features").exists()
