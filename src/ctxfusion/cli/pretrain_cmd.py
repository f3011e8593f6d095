"""``ctxfusion pretrain``: reproduce the two shipped streams from scratch.

Renders the procedural scenes on the fly (pretraining seeds >= 10_000) and trains the object and
the scene stream; writes ``scenes-<domain>-resnet18.safetensors`` and their records in
``weights.json`` atomically into ``--out``. The shipped files are only replaced when
``--out src/ctxfusion/weights`` (or the installed package's weights folder) is given explicitly.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from ctxfusion.errors import ConfigError
from ctxfusion.scenes.benchmark import PRETRAIN_SEED_BASE
from ctxfusion.scenes.pretrain import DOMAINS, pretrain_stream, save_pretrained, weights_file_name

DEFAULTS = {"object_steps": 1500, "scene_steps": 600, "width": 16, "batch_size": 96,
            "lr": 3e-3}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``pretrain`` options."""
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: a new folder pretrained-<time> here; "
                             "never the shipped weights unless named explicitly)")
    parser.add_argument("--seed", type=int, default=PRETRAIN_SEED_BASE,
                        help=f"pretraining seed, >= {PRETRAIN_SEED_BASE} (default %(default)s)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps for both streams (default: "
                             f"{DEFAULTS['object_steps']} object, {DEFAULTS['scene_steps']} scene)")
    parser.add_argument("--width", type=int, default=DEFAULTS["width"],
                        help="base width; channels width*(1,2,4,8) (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--domains", default="object,scene",
                        help="comma-separated streams to train: object, scene (default both)")
    parser.add_argument("--eval-images", type=int, default=1024,
                        help="fresh images for the held-out accuracy in the record")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def main(args: argparse.Namespace) -> int:
    """Pretrain the requested streams; print where the weights went."""
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown or not domains:
        raise ConfigError(f"--domains {args.domains!r}: valid values are {', '.join(DOMAINS)}")
    out = args.out or Path(f"pretrained-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.out is None and out.exists():
        raise ConfigError(f"{out} already exists; pass --out explicitly")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "ctxfusion pretrain " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["pretrain"]
                                                 else _as_argv(args))
    for domain in domains:
        steps = args.steps or DEFAULTS[f"{domain}_steps"]
        result = pretrain_stream(domain, steps=steps, width=args.width,
                                 batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 image_size=args.image_size, eval_images=args.eval_images,
                                 progress=not args.no_progress)
        path = save_pretrained(out, result, command)
        print(f"{domain}: {path} held-out accuracy {result.metrics['heldout_accuracy']:.3f} "
              f"in {result.metrics['seconds']:.0f} s")
    print(f"weights and weights.json in {out}; load with "
          f"create_stream(name, weights='{out / weights_file_name(domains[0])}')")
    return 0


def _as_argv(args: argparse.Namespace) -> list[str]:
    """The options of a programmatic call, spelled as command-line arguments."""
    argv = ["--seed", str(args.seed), "--width", str(args.width), "--batch-size",
            str(args.batch_size), "--lr", str(args.lr), "--image-size", str(args.image_size),
            "--domains", args.domains, "--eval-images", str(args.eval_images)]
    if args.out is not None:
        argv += ["--out", str(args.out)]
    if args.steps is not None:
        argv += ["--steps", str(args.steps)]
    return argv
