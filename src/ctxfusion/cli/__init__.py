"""The ``ctxfusion`` command.

Each subcommand lives in its own module ``ctxfusion.cli.<name>_cmd``, which defines
``configure(parser)`` (adds the subcommand's options) and ``main(args) -> int``. Errors derived from
:class:`ctxfusion.errors.CtxfusionError`, and operating-system errors on the user's files, are
printed as ``error: ...`` with exit status 2; any other exception is an internal error, printed
in one line with exit status 1 (``--debug``: raised, with its traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable

from ctxfusion import __version__
from ctxfusion.allocator import keep_freed_memory
from ctxfusion.errors import CtxfusionError

#: subcommand name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "prepare": (
        "ctxfusion.cli.prepare_cmd",
        "build a dataset manifest (COCO-format, CIFAR-10 or any ImageFolder tree)",
    ),
    "pretrain": (
        "ctxfusion.cli.pretrain_cmd",
        "generate the contextual-scenes benchmark and pretrain its two small streams",
    ),
    "run": ("ctxfusion.cli.run_cmd", "run one experiment config end to end"),
    "report": ("ctxfusion.cli.report_cmd",
               "rebuild the figures and report.html of a run directory"),
    "claims": ("ctxfusion.cli.claims_cmd",
               "judge the paper's claims on run directories (claims.md)"),
    "fusion-table": ("ctxfusion.cli.fusion_cmd",
                     "print the robust fusion table of a run directory as markdown"),
    "streams": ("ctxfusion.cli.streams_cmd", "list the registered streams and their weights"),
}


DEBUG_HELP = "on an internal error, show the traceback (and let a debugger catch it)"


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand; only those of ``commands`` (None: all) import
    their module and take their options, the others are listed by name and help alone, so that
    ``ctxfusion run`` does not import what ``pretrain`` or ``report`` need (seconds at start-up)."""
    configured = set(SUBCOMMANDS if commands is None else commands)
    parser = argparse.ArgumentParser(
        prog="ctxfusion",
        description="Contextual fusion for adversarial robustness: object and scene streams, "
        "late fusion, blur and attack sweeps, figures and a report.",
    )
    parser.add_argument("--version", action="version", version=f"ctxfusion {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                help=DEBUG_HELP)
        if name in configured:
            module = importlib.import_module(module_name)
            module.configure(sub_parser)
            sub_parser.set_defaults(_main=module.main)
    return parser


def requested_command(argv: list[str]) -> list[str]:
    """The subcommand named in ``argv`` (its first word that names one), as a list of at most
    one name: what :func:`build_parser` must configure to parse ``argv``."""
    return [word for word in argv if word in SUBCOMMANDS][:1]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(requested_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    keep_freed_memory()  # a large speed-up of CPU batches on Linux; see ctxfusion.allocator
    try:
        return int(args._main(args) or 0)
    except CtxfusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished steps are kept and reused on the next run", file=sys.stderr)
        return 130
    except OSError as exc:
        if args.debug:
            raise
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: internal error ({type(exc).__name__}: {exc}) while running "
              f"'ctxfusion {args.command}'; please report it with the command and run.json; "
              "rerun with --debug for the traceback", file=sys.stderr)
        return 1


def os_error_message(exc: OSError) -> str:
    """``<path>: <what is wrong>: <what would help>`` for an operating-system error."""
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    what = exc.strerror or str(exc)
    hint = {
        PermissionError: "check its permissions, or choose a path this user can read and write",
        IsADirectoryError: "a file was expected there, not a folder",
        NotADirectoryError: "a part of the path is a file, where a folder was expected",
        FileNotFoundError: "check that the path exists",
    }.get(type(exc), "check the path, the free disk space and the permissions")
    return f"{paths or 'a file operation'}: {what}: {hint}"

