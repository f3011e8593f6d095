"""Robust image reading: every file becomes an RGB image or a clear :class:`DataError`.

Grayscale, CMYK, palette, 16-bit and alpha images are converted to RGB (alpha is dropped,
as torchvision's ``ImageFolder`` loader does with ``convert("RGB")``). EXIF orientation is not
applied: COCO boxes refer to the stored pixel grid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ctxfusion.errors import DataError

#: What PIL raises for unreadable, truncated or corrupt files.
_READ_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError,
                Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageCheck:
    """The outcome of :func:`check_image`: size when readable, else the reason."""

    path: str
    width: int = 0
    height: int = 0
    mode: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_image(path: str | os.PathLike, decode: bool = True) -> ImageCheck:
    """Decode ``path`` fully (cheaply) to prove it is readable; never raises on bad files.

    ``decode=False`` reads only the header (size and mode), for files this program just wrote.

    ``Image.verify()`` does not notice truncated JPEG data; a full decode does. For JPEGs the
    decoder's ``draft`` mode decodes at 1/8 scale, which still reads every entropy-coded byte
    (so truncation is caught) at a fraction of the cost.
    """
    path = str(path)
    try:
        with Image.open(path) as image:
            width, height, mode = image.width, image.height, image.mode
            if decode:
                if image.format == "JPEG":
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                image.load()
    except FileNotFoundError:
        return ImageCheck(path, error="file not found")
    except _READ_ERRORS as exc:
        return ImageCheck(path, error=f"unreadable image ({type(exc).__name__}: {exc})")
    return ImageCheck(path, width, height, mode)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: PIL's convert("RGB") clips to 255 instead of rescaling.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        array = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # avoids PIL's warning for palette transparency
    return image.convert("RGB")


def read_rgb(path: str | os.PathLike) -> Image.Image:
    """Read ``path`` as an RGB PIL image; :class:`DataError` naming the file when it cannot."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except FileNotFoundError as exc:
        raise DataError(f"image file not found: {path}") from exc
    except _READ_ERRORS as exc:
        raise DataError(
            f"cannot read image {path}: {type(exc).__name__}: {exc} "
            "(re-run `ctxfusion prepare` to list unreadable files in the manifest's skipped_images)"
        ) from exc


def resolve_image_path(images_dir: Path, file_name: str) -> tuple[Path, str]:
    """The path of ``file_name`` under ``images_dir`` and the name relative to it.

    COCO ``file_name`` is relative to the image folder (``000000000139.jpg``), but some
    datasets put their folder name in it (Tiny ImageNet boxes: ``train/n01443537/x.JPEG`` with
    ``--images .../train``); then the leading folder equal to ``images_dir``'s name is removed.
    """
    candidate = images_dir / file_name
    parts = Path(file_name).parts
    if not candidate.exists() and len(parts) > 1 and parts[0] == images_dir.name:
        stripped = Path(*parts[1:])
        if (images_dir / stripped).exists():
            return images_dir / stripped, stripped.as_posix()
    return candidate, Path(file_name).as_posix()
