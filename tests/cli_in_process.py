"""Run the ``ctxfusion`` command in this process: the same entry point as the console
script (``ctxfusion.cli.main``), its exit status and its output, without the 2-10 s of a new
interpreter importing torch. Tests of the real executable (a subprocess) keep one case each;
the many cases of one kind of bad input run here."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

from ctxfusion.cli import main


def run_ctxfusion(*args: str, home: Path, env: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess:
    """``ctxfusion ARGS`` with ``CTXFUSION_HOME=home`` (and ``env``), as a CompletedProcess.
    Anything the command lets escape (a traceback) fails the calling test."""
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.update({"CTXFUSION_HOME": str(home), "CTXFUSION_OFFLINE": "1", **(env or {})})
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse usage errors
                code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["ctxfusion", *args], code, stdout.getvalue(),
                                       stderr.getvalue())
