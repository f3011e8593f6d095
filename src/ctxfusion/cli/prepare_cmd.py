"""``ctxfusion prepare coco|cifar10|imagefolder``: build a dataset's ``manifest.json``."""

from __future__ import annotations

import argparse

from ctxfusion.data.manifest import format_summary
from ctxfusion.errors import ConfigError


def _class_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated class names, got {text!r}")
    return names


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from exc
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder; manifest.json is written there atomically")
    parser.add_argument("--bad-images", choices=("skip", "error"), default="skip",
                        help="unreadable or truncated image files: skip them (counted, listed in "
                        "the manifest's skipped_images) or stop with an error (default: skip)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``coco``, ``cifar10`` and ``imagefolder`` sub-subcommands."""
    sub = parser.add_subparsers(dest="dataset_kind", metavar="KIND", required=True)
    coco = sub.add_parser(
        "coco", help="COCO-format instances JSON + image folder, pruned as in SPEC section 2",
        description="Prune a COCO-format dataset (one category, <= 2 instances, foreground "
        "<= 50%), keep the N classes with most images, split 75/25 (seeded, stratified) or use "
        "the dataset's own test split, and draw the All/Dissimilar/Similar subsets.")
    coco.add_argument("--annotations", required=True, metavar="FILE",
                      help="COCO instances JSON (train split when --test-annotations is given)")
    coco.add_argument("--images", required=True, metavar="DIR",
                      help="folder the JSON's file_name entries are relative to")
    _common(coco)
    coco.add_argument("--num-classes", type=_positive, metavar="N",
                      help="keep the N categories with the most surviving (train) images, ties "
                      "by category id (default: 24)")
    coco.add_argument("--classes", type=_class_list, metavar="a,b,c",
                      help="explicit comma-separated class names instead of --num-classes")
    coco.add_argument("--seed", type=int, default=0,
                      help="seed of the split and of the subsets (default: 0)")
    coco.add_argument("--instance-rule", choices=("image", "category"), default="image",
                      help="image: all annotations of one category and at most --max-instances "
                      "of them; category: the label (category with the largest box area) has at "
                      "most --max-instances annotations, other objects are context "
                      "(default: image)")
    coco.add_argument("--max-instances", type=_positive, default=2, metavar="K",
                      help="most instances allowed by the instance rule (default: 2)")
    coco.add_argument("--max-foreground", type=_fraction, default=0.5, metavar="F",
                      help="largest allowed fraction of the image covered by the union of the "
                      "kept boxes (default: 0.5)")
    coco.add_argument("--crowd", choices=("drop", "ignore"), default="drop",
                      help="images with an iscrowd annotation: drop them, or ignore the crowd "
                      "annotations (default: drop)")
    coco.add_argument("--test-annotations", metavar="FILE",
                      help="COCO JSON of the dataset's own test split (replaces the random split)")
    coco.add_argument("--test-images", metavar="DIR",
                      help="image folder of --test-annotations")
    coco.add_argument("--test-fraction", type=_fraction, default=0.25, metavar="F",
                      help="fraction of each class put in test by the random split (default: 0.25)")
    coco.add_argument("--subset-size", type=_positive, default=8, metavar="K",
                      help="classes per Dissimilar/Similar subset (default: 8)")
    coco.add_argument("--name", default="coco", help="dataset name in the manifest (default: coco)")
    coco.set_defaults(_prepare=_prepare_coco)

    cifar = sub.add_parser(
        "cifar10", help="CIFAR-10 from the official python batches or an ImageFolder tree",
        description="CIFAR-10 from ROOT/cifar-10-batches-py (exported once as PNGs into "
        "OUT/images) or from ROOT/train/<class>/ and ROOT/test/<class>/; official class order.")
    cifar.add_argument("--root", required=True, metavar="DIR",
                       help="folder holding cifar-10-batches-py/ or train/ and test/")
    _common(cifar)
    cifar.add_argument("--download", action="store_true",
                       help="download the official python batches into --root (needs internet)")
    cifar.set_defaults(_prepare=_prepare_cifar10)

    folder = sub.add_parser(
        "imagefolder", help="any ImageFolder tree (box-free experiments)",
        description="ROOT/train/<class>/ and ROOT/test/<class>/ (or val/) keep their split; "
        "otherwise ROOT/<class>/ is split per class at random (seeded).")
    folder.add_argument("--root", required=True, metavar="DIR", help="the ImageFolder root")
    _common(folder)
    folder.add_argument("--test-fraction", type=_fraction, default=0.25, metavar="F",
                        help="fraction of each class put in test when there is no test/ "
                        "folder (default: 0.25)")
    folder.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    folder.add_argument("--name", default="imagefolder",
                        help="dataset name in the manifest (default: imagefolder)")
    folder.set_defaults(_prepare=_prepare_imagefolder)


def _prepare_coco(args: argparse.Namespace):
    from ctxfusion.data.coco import prepare_coco

    if args.classes and args.num_classes is not None:
        raise ConfigError("give --classes or --num-classes, not both")
    return prepare_coco(
        args.annotations, args.images, args.out, num_classes=args.num_classes or 24,
        classes=args.classes, seed=args.seed, instance_rule=args.instance_rule,
        max_instances=args.max_instances, max_foreground=args.max_foreground, crowd=args.crowd,
        test_annotations=args.test_annotations, test_images=args.test_images,
        bad_images=args.bad_images, test_fraction=args.test_fraction,
        subset_size=args.subset_size, dataset=args.name, progress=not args.quiet)


def _prepare_cifar10(args: argparse.Namespace):
    from ctxfusion.data.cifar import prepare_cifar10

    return prepare_cifar10(args.root, args.out, download=args.download,
                           bad_images=args.bad_images, progress=not args.quiet)


def _prepare_imagefolder(args: argparse.Namespace):
    from ctxfusion.data.imagefolder import prepare_imagefolder

    if args.test_fraction >= 1:
        raise ConfigError(f"--test-fraction must be below 1, got {args.test_fraction}")
    return prepare_imagefolder(args.root, args.out, test_fraction=args.test_fraction,
                               seed=args.seed, bad_images=args.bad_images, dataset=args.name,
                               progress=not args.quiet)


def main(args: argparse.Namespace) -> int:
    """Run the chosen preparation and print its summary; errors propagate as CtxfusionError."""
    manifest = args._prepare(args)
    print(format_summary(manifest))
    return 0
