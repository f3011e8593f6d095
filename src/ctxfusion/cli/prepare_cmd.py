"""``ctxfusion prepare KIND``: build a dataset's ``manifest.json`` (coco, cifar10, imagefolder).

Every registered dataset kind with ``prepare_options`` gets a sub-subcommand whose options are
those fields of the kind's config; the config is built and prepared exactly as a
``ctxfusion run`` dataset is (``ctxfusion.data.kinds.prepare_dataset``).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable
from typing import Any

from ctxfusion.data.kinds import (
    BAD_IMAGE_POLICIES,
    CHECKS,
    DATASET_KINDS,
    dataset_kind,
    make_dataset_config,
    prepare_dataset,
)
from ctxfusion.data.manifest import format_summary
from ctxfusion.errors import ConfigError


def _class_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated class names, got {text!r}")
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fraction_parser(check: str) -> Callable[[str], float]:
    """An argparse type for a number passing the field check ``check`` (e.g. ``(0,1]``)."""
    test, _ = CHECKS[check]
    interval = check.replace(",", ", ")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"expected a number in {interval}, got {text!r}") from exc
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text!r}")
        return value

    return parse


def _add_option(parser: argparse.ArgumentParser, f: dataclasses.Field, hint: Any,
                default: Any) -> None:
    """One ``--field-name`` option from a kind's config field (help, type and checks)."""
    meta, flag = f.metadata, "--" + f.name.replace("_", "-")
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if base is bool:
        parser.add_argument(flag, action="store_true", help=meta["help"])
        return
    shown = default is not dataclasses.MISSING and default is not None
    kwargs: dict[str, Any] = {"help": meta["help"] + (f" (default: {default})" if shown else ""),
                              "required": default is dataclasses.MISSING,
                              "metavar": meta.get("metavar")}
    if meta.get("choices"):
        kwargs["choices"] = meta["choices"]
    elif typing.get_origin(base) is list:
        kwargs["type"] = _class_list
    elif base is int:
        kwargs["type"] = _positive if meta.get("check") == ">0" else int
    elif base is float:
        kwargs["type"] = _fraction_parser(meta["check"]) if meta.get("check") else float
    parser.add_argument(flag, **kwargs)


def configure(parser: argparse.ArgumentParser) -> None:
    """One sub-subcommand per registered dataset kind with ``prepare_options``; each option
    is a field of the kind's config (``ctxfusion.data.kinds``)."""
    sub = parser.add_subparsers(dest="dataset_kind", metavar="KIND", required=True)
    for kind in DATASET_KINDS:
        cls = dataset_kind(kind)
        if not cls.prepare_options:
            continue
        kind_parser = sub.add_parser(kind, help=cls.summary,
                                     description=" ".join((cls.__doc__ or "").split()))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        for name in cls.prepare_options:  # the name defaults to the kind's
            default = kind if name == "name" else fields[name].default
            _add_option(kind_parser, fields[name], hints[name], default)
        kind_parser.add_argument(
            "--out", required=True, metavar="DIR",
            help="output folder; manifest.json is written there atomically")
        kind_parser.add_argument(
            "--bad-images", choices=BAD_IMAGE_POLICIES, default="skip",
            help="unreadable or truncated image files: skip them (counted, listed in the "
            "manifest's skipped_images) or stop with an error (default: skip)")
        kind_parser.add_argument("--quiet", action="store_true", help="no progress bars")
        kind_parser.set_defaults(_options=cls.prepare_options)


def main(args: argparse.Namespace) -> int:
    """Build the kind's config from the options, prepare it through the dispatcher of
    ``ctxfusion.data.kinds`` (the one ``ctxfusion run`` uses) and print its summary."""
    values = {name: getattr(args, name) for name in args._options
              if getattr(args, name) is not None}
    if values.get("classes") and "num_classes" in values:
        raise ConfigError("give --classes or --num-classes, not both")
    values.setdefault("name", args.dataset_kind)
    config = make_dataset_config(args.dataset_kind, f"prepare {args.dataset_kind}", **values)
    manifest = prepare_dataset(config, args.out, bad_images=args.bad_images,
                               progress=not args.quiet)
    print(format_summary(manifest))
    return 0
