"""Experiment configs: every shipped config loads; bad keys and values are named in errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctxfusion.cli import main
from ctxfusion.config import load_config
from ctxfusion.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert config.datasets and config.streams["fg"].name and config.streams["bg"].name


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {
    "experiment": "t",
    "streams": {"fg": {"name": "scenes-object-resnet18"}, "bg": {"name": "scenes-scene-resnet18"}},
    "datasets": [{"name": "d", "kind": "scenes", "context_strength": 0.5}],
}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"blur": {"sigmas": [1, 5, -1]}}, "blur.sigmas[2] = -1.0: a sigma must be > 0"),
        ({"blurr": {}}, "blurr: unknown key"),
        ({"fgsm": {"eps_space": "weird"}}, "fgsm.eps_space = 'weird': valid values are pixel"),
        ({"fgsm": {"epsilons": ["x"]}}, "fgsm.epsilons[0] = 'x': expected a number"),
        ({"streams": {"fg": {"name": "scenes-object-resnet18", "views": ["side"]},
                      "bg": {"name": "scenes-scene-resnet18"}}},
         "streams.fg.views[0] = 'side': valid values are full, context, object"),
        ({"datasets": [{"name": "d", "kind": "scenes", "context_strength": 2}]},
         "datasets[0].context_strength = 2.0"),
        ({"datasets": [{"name": "d", "kind": "coco"}]},
         "datasets[0].annotations is required"),
        ({"heads": {"alphas": [0]}}, "heads.alphas[0] = 0.0: an alpha must be > 0"),
        ({"gradient_batch_size": 0}, "gradient_batch_size = 0: must be > 0"),
        ({"num_workers": -1}, "num_workers = -1: must be >= 0"),
        ({"precision": "fp8"}, "precision = 'fp8': valid values are auto, float32, bfloat16"),
        ({"memory_format": "nhwc"}, "memory_format = 'nhwc': valid values are auto, contiguous"),
        ({"cuda": {"batch_size": 0}}, "cuda.batch_size = 0: must be > 0"),
        ({"streams": {"fg": {"name": "resnet17"}, "bg": {"name": "scenes-scene-resnet18"}}},
         "streams.fg.name = 'resnet17': unknown stream 'resnet17'; registered streams: "),
        ({"fgsm": {"regions": ["box", "object"]}},
         "fgsm.regions[1] = 'object': valid values are image, box, background"),
        ({"whitebox": {"regions": []}}, "whitebox.regions is empty"),
        ({"whitebox": {"region_epsilons": [2]}}, "whitebox.region_epsilons[0] = 2.0"),
        ({"whitebox": {"attacks": ["pgd", "cw"]}}, "whitebox.attacks[1] = 'cw': valid values"),
        ({"corruptions": {"names": ["snow"]}},
         "corruptions.names[0] = 'snow': valid values are gaussian_blur, gaussian_noise"),
        ({"corruptions": {"severities": [0]}},
         "corruptions.severities[0] = 0: a severity is an integer from 1 to 5"),
        ({"corruptions": {"max_images": 0}}, "corruptions.max_images = 0"),
        ({"attack_repeats": 4}, "attack_repeats = 4: must be from 1 to repeats = 1"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, patch: dict, message: str) -> None:
    path = _write(tmp_path, {**BASE, **patch})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_overrides_use_dotted_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    config = load_config(path, ["blur.sigmas=[1, 2]", "datasets[0].num_train=10", "seed=7"])
    assert config.blur.sigmas == [1.0, 2.0]
    assert config.datasets[0].num_train == 10
    assert config.seed == 7
    with pytest.raises(ConfigError, match=r"datasets\[3\]"):
        load_config(path, ["datasets[3].num_train=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(path, ["seed"])


def test_cli_reports_config_errors_with_exit_2(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, {**BASE, "blur": {"sigmas": [-1]}})
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "blur.sigmas[0] = -1.0" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_cli_subprocess_missing_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ctxfusion.cli", "run", str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert "error: " in result.stderr and "config file not found" in result.stderr
    assert "Traceback" not in result.stderr
