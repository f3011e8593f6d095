"""Vectorised numpy rendering of the contextual-scenes world: backgrounds and textured objects.

Scenes are coarse, spatially structured backgrounds (sky/ground/water/wall/floor with a horizon,
low-frequency textures, lighting and colour jitter, noise). Objects are random shapes whose
*class* is a fine texture (period 3-6 px) painted in two random colours: coarse colour and shape
carry no class information, so a Gaussian blur of sigma ~3 px inside the box destroys the object
cue while the scene around it stays recognisable (the property the benchmark exists for).

Written by hand because no maintained library renders such a controlled procedural world; every
function works on a whole batch at once (arrays of shape (n, H, W)) so thousands of images take
seconds.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# --- the catalogue -------------------------------------------------------------------------

#: (name, family, sky kind, sky colours, ground kind, ground colours, horizon fraction)
SCENES: list[tuple[str, str, str, tuple, str, tuple, float]] = [
    ("ocean", "water", "gradient", ((.45, .7, .95), (.8, .9, 1.)), "waves",
     ((.05, .25, .6), (.2, .45, .8)), .42),
    ("lake-dusk", "water", "gradient", ((.95, .55, .3), (.6, .3, .5)), "waves",
     ((.1, .1, .3), (.5, .3, .4)), .5),
    ("meadow", "grassland", "clouds", ((.5, .75, 1.), (.95, .95, .95)), "blotches",
     ((.2, .55, .15), (.45, .75, .2)), .45),
    ("savanna", "grassland", "gradient", ((.85, .85, .7), (.7, .8, .95)), "rows",
     ((.7, .65, .25), (.5, .55, .2)), .55),
    ("pine-forest", "forest", "trunks", ((.05, .25, .1), (.3, .45, .3)), "blotches",
     ((.25, .18, .1), (.12, .3, .1)), .7),
    ("autumn-forest", "forest", "trunks", ((.75, .35, .05), (.35, .2, .1)), "blotches",
     ((.5, .3, .1), (.8, .5, .1)), .7),
    ("dunes", "desert", "gradient", ((.4, .65, .95), (.9, .85, .7)), "dunes",
     ((.85, .7, .4), (.65, .5, .25)), .38),
    ("canyon", "desert", "clouds", ((.55, .7, .9), (.8, .5, .35)), "blotches",
     ((.6, .25, .1), (.8, .45, .25)), .3),
    ("snowfield", "snow", "clouds", ((.6, .62, .68), (.85, .85, .88)), "blotches",
     ((.88, .9, .95), (.75, .8, .9)), .4),
    ("glacier", "snow", "gradient", ((.15, .4, .85), (.6, .8, 1.)), "rows",
     ((.6, .85, .95), (.9, .97, 1.)), .45),
    ("street", "city", "skyline", ((.6, .75, .9), (.4, .4, .45)), "road",
     ((.3, .3, .32), (.9, .85, .3)), .6),
    ("night-city", "city", "skyline", ((.03, .03, .12), (.15, .12, .2)), "road",
     ((.12, .12, .15), (.9, .7, .2)), .6),
    ("kitchen", "indoor", "wall", ((.9, .85, .65), (.75, .65, .45)), "tiles",
     ((.55, .35, .2), (.9, .9, .85)), .62),
    ("bathroom", "indoor", "tiles", ((.65, .85, .9), (.95, .97, 1.)), "blotches",
     ((.9, .9, .9), (.8, .82, .85)), .7),
    ("reef", "deep", "rays", ((.0, .35, .45), (.2, .6, .65)), "blotches",
     ((.8, .4, .4), (.3, .6, .5)), .65),
    ("space", "deep", "stars", ((.0, .0, .05), (1., 1., .95)), "blotches",
     ((.35, .3, .3), (.15, .12, .12)), .75),
]
SCENE_NAMES: list[str] = [s[0] for s in SCENES]
FAMILIES: list[str] = list(dict.fromkeys(s[1] for s in SCENES))

#: supercategory -> (family it lives in, pattern kind, [(class name, orientation deg, period px)])
SUPERCATEGORIES: dict[str, tuple[str, str, list[tuple[str, float, float]]]] = {
    "striped": ("grassland", "stripes", [
        (f"stripes-{a:03d}-{w}", float(a), p)
        for w, p in (("fine", 3.4), ("coarse", 5.0)) for a in (0, 36, 72, 108, 144)]),
    "checkered": ("water", "checker", [("checker-fine", 0., 3.6), ("checker-coarse", 0., 5.6)]),
    "dotted": ("forest", "dots", [("dots-fine", 0., 3.8), ("dots-coarse", 0., 5.6)]),
    "wavy": ("desert", "wavy", [("wavy-horizontal", 90., 3.6), ("wavy-vertical", 0., 3.6)]),
    "ringed": ("snow", "rings", [("rings-fine", 0., 3.4), ("rings-coarse", 0., 5.4)]),
    "hatched": ("city", "hatch", [("hatch-square", 0., 4.4), ("hatch-diagonal", 45., 4.4)]),
    "zigzag": ("indoor", "zigzag", [("zigzag-horizontal", 90., 4.0),
                                    ("zigzag-vertical", 0., 4.0)]),
    "radial": ("deep", "radial", [("spokes-12", 0., 12.), ("spokes-20", 0., 20.)]),
}
CLASS_NAMES: list[str] = [c[0] for _, _, cs in SUPERCATEGORIES.values() for c in cs]
CLASS_SUPERCATEGORY: list[str] = [s for s, (_, _, cs) in SUPERCATEGORIES.items() for _ in cs]
_CLASS_KIND = [k for _, k, cs in SUPERCATEGORIES.values() for _ in cs]
_CLASS_ANGLE = np.array([c[1] for _, _, cs in SUPERCATEGORIES.values() for c in cs], np.float32)
_CLASS_PERIOD = np.array([c[2] for _, _, cs in SUPERCATEGORIES.values() for c in cs], np.float32)
SHAPES: list[str] = ["ellipse", "square", "diamond", "triangle", "hexagon", "blob"]


# --- helpers -------------------------------------------------------------------------------

def _grid(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates, broadcastable to (n, size, size)."""
    c = np.arange(size, dtype=np.float32) + 0.5
    return c[None, None, :].repeat(n, 0), c[None, :, None].repeat(n, 0)


def low_noise(rng: np.random.Generator, n: int, size: int,
              cells: int | tuple[int, int]) -> np.ndarray:
    """Smooth noise in [0,1]: a coarse random grid upsampled bicubically (torch interpolate)."""
    gy, gx = (cells, cells) if isinstance(cells, int) else cells
    coarse = torch.from_numpy(rng.random((n, 1, gy, gx), dtype=np.float32))
    fine = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return fine[:, 0].clamp(0, 1).numpy()


def _mix(c1: np.ndarray, c2: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-pixel blend of per-image colours c1, c2 (n,3) by p (n,H,W) -> (n,H,W,3)."""
    return c1[:, None, None, :] * (1 - p[..., None]) + c2[:, None, None, :] * p[..., None]


def _soft_square(z: np.ndarray, sharpness: float = 2.5) -> np.ndarray:
    """A square wave with slightly soft edges (less aliasing than a hard threshold)."""
    return np.clip(0.5 + sharpness * z, 0.0, 1.0)


def _jitter(rng: np.random.Generator, colour: tuple, n: int, amount: float = 0.07) -> np.ndarray:
    noise = rng.normal(0, amount, (n, 3)).astype(np.float32)
    return np.clip(np.asarray(colour, np.float32) + noise, 0, 1)


# --- scenes --------------------------------------------------------------------------------

def _layer(kind: str, rng: np.random.Generator, n: int, size: int, horizon: np.ndarray,
           x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Blend weight p (n,H,W) in [0,1] between a layer's two colours, for one texture kind."""
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    if kind == "gradient":
        return np.clip(y / (horizon * size + 1e-3), 0, 1) * 0.9 + 0.1 * low_noise(rng, n, size, 4)
    if kind == "clouds":
        return np.clip((low_noise(rng, n, size, (4, 6)) - 0.5) * 3 + 0.3, 0, 1)
    if kind == "blotches":
        return np.clip((low_noise(rng, n, size, 7) - 0.5) * 2.5 + 0.5, 0, 1)
    if kind == "waves":
        warp = 2.0 * low_noise(rng, n, size, 4)
        return 0.5 + 0.5 * np.sin(2 * np.pi * y / 9.0 + warp + phase)
    if kind == "rows":
        return 0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.6 * y) / 14.0 + phase)
    if kind == "dunes":
        return 0.5 + 0.5 * np.sin(2 * np.pi * (y + 5 * np.sin(2 * np.pi * x / 40 + phase)) / 16)
    if kind == "trunks":
        cols = low_noise(rng, n, size, (1, 12))
        return np.clip((cols - 0.5) * 4 + 0.5, 0, 1) * (0.8 + 0.2 * y / size)
    if kind == "skyline":
        heights = rng.uniform(0.25, 0.95, (n, 1, size // 8)).repeat(8, axis=2)
        top = (horizon * size) * (1 - heights)
        return (y > top).astype(np.float32) * (0.85 + 0.15 * low_noise(rng, n, size, 3))
    if kind == "road":
        lane = (np.abs(x - size / 2 - (y - size) * 0.2) < 1.2) & (np.sin(y / 2.5 + phase) > 0)
        return np.clip(0.15 * low_noise(rng, n, size, 8) + lane, 0, 1)
    if kind == "wall":
        return 0.5 + 0.35 * np.sin(2 * np.pi * x / 32 + phase) * (1 - y / size)
    if kind == "tiles":
        grout = (np.mod(x + phase * 2, 11.0) < 1.3) | (np.mod(y + phase * 2, 11.0) < 1.3)
        return np.where(grout, 0.0, 0.9 + 0.1 * low_noise(rng, n, size, 5))
    if kind == "rays":
        return np.clip(0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.4 * y) / 18 + phase)
                       * (1 - y / size), 0, 1)
    if kind == "stars":
        return (rng.random((n, size, size), dtype=np.float32) > 0.975).astype(np.float32)
    raise ValueError(f"unknown layer kind {kind!r}")


def render_scenes(rng: np.random.Generator, scene_ids: np.ndarray, size: int) -> np.ndarray:
    """Backgrounds for each scene id: float32 (n, size, size, 3) in [0,1]."""
    n = len(scene_ids)
    out = np.empty((n, size, size, 3), np.float32)
    for sid in np.unique(scene_ids):
        idx = np.flatnonzero(scene_ids == sid)
        m = len(idx)
        _, _, sky, sky_c, ground, ground_c, horizon = SCENES[sid]
        x, y = _grid(m, size)
        hor = np.clip(horizon + rng.uniform(-0.08, 0.08, (m, 1, 1)), 0.15, 0.85).astype(np.float32)
        tilt = rng.uniform(-0.08, 0.08, (m, 1, 1)).astype(np.float32)
        line = (hor + tilt * (x / size - 0.5)) * size
        top = _mix(_jitter(rng, sky_c[0], m), _jitter(rng, sky_c[1], m),
                   _layer(sky, rng, m, size, hor, x, y))
        bottom = _mix(_jitter(rng, ground_c[0], m), _jitter(rng, ground_c[1], m),
                      _layer(ground, rng, m, size, hor, x, y - line))
        sky_w = np.clip(line - y + 0.5, 0, 1)[..., None]
        img = top * sky_w + bottom * (1 - sky_w)
        # lighting: a global brightness, a left-right gradient, and sensor noise
        light = (rng.uniform(0.8, 1.15, (m, 1, 1, 1)) + rng.uniform(-0.15, 0.15, (m, 1, 1, 1))
                 * (x[..., None] / size - 0.5)).astype(np.float32)
        img = img * light + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.025)
        out[idx] = img
    return np.clip(out, 0, 1, out=out)


# --- objects -------------------------------------------------------------------------------

def _shape_mask(shape_ids: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of each image's shape in its local coordinates u, v in [-1,1]."""
    r = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    tests = {
        "ellipse": u * u + (v * 1.25) ** 2 <= 1,
        "square": np.maximum(np.abs(u), np.abs(v)) <= 0.7,
        "diamond": np.abs(u) + np.abs(v) <= 1,
        "triangle": (v <= 0.6) & (v >= 2.0 * np.abs(u) - 0.95),
        "hexagon": np.maximum(np.abs(u) * 0.866 + np.abs(v) * 0.5, np.abs(v)) <= 0.85,
        "blob": r <= 0.78 + 0.18 * np.cos(3 * theta),
    }
    mask = np.zeros(u.shape, bool)
    for k, name in enumerate(SHAPES):
        sel = shape_ids == k
        mask[sel] = tests[name][sel]
    return mask


def _pattern(labels: np.ndarray, dx: np.ndarray, dy: np.ndarray, rng: np.random.Generator,
             flat: np.ndarray) -> np.ndarray:
    """Each image's class texture p in [0,1] around its instance centre (dx, dy in pixels)."""
    n = len(labels)
    ang = np.deg2rad(_CLASS_ANGLE[labels] + rng.uniform(-8, 8, n)).astype(np.float32)
    period = (_CLASS_PERIOD[labels] * rng.uniform(0.92, 1.08, n)).astype(np.float32)
    ang, period = ang[:, None, None], period[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    a = dx * np.cos(ang) + dy * np.sin(ang)
    b = -dx * np.sin(ang) + dy * np.cos(ang)
    two_pi = np.float32(2 * np.pi)
    p = np.full(dx.shape, 0.5, np.float32)
    kinds = np.array(_CLASS_KIND)[labels]
    for kind in np.unique(kinds):
        s = kinds == kind
        A, B, T, ph = a[s], b[s], period[s], phase[s]
        if kind == "stripes":
            val = _soft_square(np.sin(two_pi * A / T + ph))
        elif kind == "checker":
            val = _soft_square(np.sin(two_pi * A / T + ph) * np.sin(two_pi * B / T))
        elif kind == "dots":
            fa, fb = np.mod(A / T + ph, 1) - 0.5, np.mod(B / T, 1) - 0.5
            val = _soft_square(0.16 - (fa * fa + fb * fb), 12.0)
        elif kind == "wavy":
            val = _soft_square(np.sin(two_pi * (A + 1.2 * np.sin(two_pi * B / (3 * T))) / T + ph))
        elif kind == "rings":
            val = _soft_square(np.sin(two_pi * np.sqrt(A * A + B * B) / T + ph))
        elif kind == "hatch":
            lines = np.minimum(np.abs(np.sin(np.pi * A / T)), np.abs(np.sin(np.pi * B / T)))
            val = _soft_square(0.5 - lines, 3.0)
        elif kind == "zigzag":
            tri = np.abs(np.mod(B / (2 * T), 1) * 2 - 1) * T
            val = _soft_square(np.sin(two_pi * (A + tri) / T + ph))
        else:  # radial spokes; the "period" is the number of spokes
            val = _soft_square(np.sin(T * np.arctan2(B, A) + ph))
        p[s] = val
    p[flat] = 0.5
    return p


def _object_colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two contrasting random colours per instance (no class information in coarse colour)."""
    c1 = rng.uniform(0.05, 0.95, (n, 3)).astype(np.float32)
    c2 = rng.uniform(0.05, 0.95, (n, 3)).astype(np.float32)
    weak = np.abs(c1 - c2).mean(1) < 0.3
    c2[weak] = 1 - c1[weak]
    return c1, c2


def paint_objects(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray,
                  flat_prob: float = 0.0) -> list[np.ndarray]:
    """Paint one or two instances (same class) into each image in place; return XYXY boxes.

    Every shape lies inside the disc of radius side/2 around its centre, whose margins keep it
    inside the image (or inside its half of the image when there are two instances), so
    instances never overlap and every box is exact (tight around its own drawn pixels). Sizes
    keep the union of boxes under 25 % of the image. Work happens in a window around each
    instance, not the whole image (4x less arithmetic).
    """
    n, size = images.shape[0], images.shape[1]
    two = rng.random(n) < 0.3
    vertical_split = rng.random(n) < 0.5
    boxes: list[list[list[float]]] = [[] for _ in range(n)]
    win = int(np.ceil(0.5 * size)) + 2
    local = np.arange(win, dtype=np.float32) + 0.5
    rows_n = np.arange(n)[:, None, None]
    for inst in range(2):
        active = np.ones(n, bool) if inst == 0 else two
        side = np.where(two, rng.uniform(0.22, 0.34, n), rng.uniform(0.32, 0.5, n)) * size
        lo_x, hi_x = np.zeros(n), np.full(n, float(size))
        lo_y, hi_y = np.zeros(n), np.full(n, float(size))
        half = size / 2
        splits = ((lo_x, hi_x, two & vertical_split), (lo_y, hi_y, two & ~vertical_split))
        for lo, hi, use in splits:
            if inst == 0:
                hi[use] = half
            else:
                lo[use] = half
        cx = rng.uniform(lo_x + side / 2 + 1, hi_x - side / 2 - 1)
        cy = rng.uniform(lo_y + side / 2 + 1, hi_y - side / 2 - 1)
        ox = np.clip(np.floor(cx).astype(int) - win // 2, 0, size - win)
        oy = np.clip(np.floor(cy).astype(int) - win // 2, 0, size - win)
        rot = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
        dx = local[None, None, :] + (ox - cx).astype(np.float32)[:, None, None]
        dy = local[None, :, None] + (oy - cy).astype(np.float32)[:, None, None]
        dx, dy = np.broadcast_arrays(dx, dy)
        scale = (side / 2).astype(np.float32)[:, None, None]
        u = (dx * np.cos(rot) + dy * np.sin(rot)) / scale
        v = (-dx * np.sin(rot) + dy * np.cos(rot)) / scale
        shape_ids = rng.integers(0, len(SHAPES), n)
        mask = _shape_mask(np.broadcast_to(shape_ids[:, None, None], u.shape), u, v)
        mask &= active[:, None, None]
        c1, c2 = _object_colours(rng, n)
        flat = rng.random(n) < flat_prob
        p = _pattern(labels, dx, dy, rng, flat)
        shade = 1 + 0.12 * np.clip(-u - v, -1, 1)  # a little directional shading
        colour = np.clip(_mix(c1, c2, p) * shade[..., None], 0, 1)
        rows = oy[:, None, None] + np.arange(win)[None, :, None]
        cols = ox[:, None, None] + np.arange(win)[None, None, :]
        patch = images[rows_n, rows, cols]
        patch[mask] = colour[mask]
        images[rows_n, rows, cols] = patch
        for i in np.flatnonzero(active):
            r, c = np.flatnonzero(mask[i].any(1)), np.flatnonzero(mask[i].any(0))
            boxes[i].append([float(c[0] + ox[i]), float(r[0] + oy[i]),
                             float(c[-1] + 1 + ox[i]), float(r[-1] + 1 + oy[i])])
    return [np.asarray(b, np.float32) for b in boxes]
