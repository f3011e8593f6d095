"""``ctxfusion prepare``: help documents every option; bad input exits 2 with ``error:``."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from ctxfusion.cli import build_parser, main
from test_coco_rules import write_coco

KINDS = ("coco", "cifar10", "imagefolder")


def _subparser(parser, name):
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices[name]


@pytest.mark.parametrize("kind", KINDS)
def test_help_documents_every_option(kind, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", kind, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    parser = _subparser(_subparser(build_parser(), "prepare"), kind)
    for action in parser._actions:
        for option in action.option_strings:
            assert option in text
        if action.option_strings and action.dest != "help":
            assert action.help, f"{kind} {action.option_strings} has no help"


def test_prepare_help_lists_kinds(capsys):
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    text = capsys.readouterr().out
    assert all(kind in text for kind in KINDS)


def test_coco_end_to_end_prints_summary(tmp_path, capsys):
    ann, images = write_coco(tmp_path)
    status = main(["prepare", "coco", "--annotations", str(ann), "--images", str(images),
                   "--out", str(tmp_path / "out"), "--num-classes", "2", "--seed", "1",
                   "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    assert "images left after each rule" in out and "foreground" in out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["classes"] == ["car", "dog"] and manifest["settings"]["seed"] == 1
    for name in manifest["classes"]:
        counts = [sum(e["label"] == name and e["split"] == s for e in manifest["images"])
                  for s in ("train", "test")]
        assert re.search(rf"^\s+{name}\s+{counts[0]}\s+{counts[1]}\s", out, re.MULTILINE)


@pytest.mark.parametrize("argv, message", [
    (["coco", "--annotations", "{bad}", "--images", "{dir}"], "is not valid JSON"),
    (["coco", "--annotations", "{ann}", "--images", "{dir}/images", "--classes", "dog,horse"],
     "'horse' not in"),
    (["coco", "--annotations", "{ann}", "--images", "{dir}/images", "--classes", "dog",
      "--num-classes", "3"], "not both"),
    (["coco", "--annotations", "{ann}", "--images", "{dir}/images", "--test-images", "{dir}"],
     "give both or neither"),
    (["imagefolder", "--root", "{dir}/missing"], "image folder not found"),
    (["cifar10", "--root", "{dir}"], "no CIFAR-10 data in"),
])
def test_bad_input_exits_2_with_error(tmp_path, capsys, argv, message):
    ann, _ = write_coco(tmp_path)
    (tmp_path / "bad.json").write_text("{")
    argv = [a.format(ann=ann, dir=tmp_path, bad=tmp_path / "bad.json") for a in argv]
    assert main(["prepare", *argv, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "coco", "--annotations", "a.json", "--images", "x", "--out", "o",
              "--max-foreground", "1.5"])
    assert exit_info.value.code == 2
    assert "error: argument --max-foreground: expected a number in (0, 1]" in \
        capsys.readouterr().err


def test_subprocess_bad_annotation_file(tmp_path):
    bad = tmp_path / "instances.json"
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    result = subprocess.run(
        [sys.executable, "-m", "ctxfusion.cli", "prepare", "coco", "--annotations", str(bad),
         "--images", str(tmp_path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: annotation file")
    assert "lacks the key 'categories'" in result.stderr and "Traceback" not in result.stderr
