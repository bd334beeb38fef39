"""Procedural, seeded textures for the scene kits (numpy only).

Every texture is an RGB uint8 image [H, W, 3] whose rows run top to bottom (as PNG stores
them). Textures carry enough high-frequency detail that reconstruction and depth estimation
have something to lock onto, and they are fully determined by the seed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

TexturePattern = Callable[[np.random.Generator, int, np.ndarray, np.ndarray], np.ndarray]


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Blend colours ``a`` and ``b`` [3] with weights ``t`` [H, W] -> [H, W, 3]."""
    return a[None, None, :] * (1.0 - t[..., None]) + b[None, None, :] * t[..., None]


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth tileable noise in [0, 1] [size, size]: bicubic-smoothed random lattice values."""
    lattice = rng.random((cells, cells))
    coords = np.arange(size) * cells / size
    i0 = np.floor(coords).astype(int)
    frac = coords - i0
    smooth = frac * frac * (3.0 - 2.0 * frac)  # smoothstep: C1-continuous across cells
    i1 = (i0 + 1) % cells
    rows0, rows1 = lattice[i0 % cells], lattice[i1]
    top = rows0[:, i0] * (1 - smooth)[None, :] + rows0[:, i1] * smooth[None, :]
    bottom = rows1[:, i0] * (1 - smooth)[None, :] + rows1[:, i1] * smooth[None, :]
    return top * (1 - smooth)[:, None] + bottom * smooth[:, None]


def fractal_noise(rng: np.random.Generator, size: int, octaves: int = 4, base_cells: int = 4) -> np.ndarray:
    """Sum of value-noise octaves, normalised to [0, 1] [size, size]."""
    total = np.zeros((size, size))
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        cells = min(base_cells * 2**octave, size)
        total += amplitude * value_noise(rng, size, cells)
        weight += amplitude
        amplitude *= 0.5
    total /= weight
    return (total - total.min()) / max(total.max() - total.min(), 1e-9)


def _checker(rng, size, base, accent):
    squares = int(rng.integers(4, 9))
    y, x = np.mgrid[0:size, 0:size] * squares // size
    t = ((x + y) % 2).astype(float)
    return _mix(base, accent, 0.15 + 0.7 * t * (0.8 + 0.2 * fractal_noise(rng, size, 3, 8)))


def _stripes(rng, size, base, accent):
    frequency = rng.uniform(6, 14)
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:size, 0:size] / size
    phase = (x * np.cos(angle) + y * np.sin(angle)) * frequency * 2 * np.pi
    t = 0.5 + 0.5 * np.sin(phase + 2.0 * fractal_noise(rng, size, 3, 4))
    return _mix(base, accent, t)


def _wood(rng, size, base, accent):
    y, x = np.mgrid[0:size, 0:size] / size
    warp = fractal_noise(rng, size, 4, 4)
    rings = np.sin((x * rng.uniform(10, 20) + 3.0 * warp) * 2 * np.pi)
    grain = fractal_noise(rng, size, 5, 16)
    return _mix(base, accent, np.clip(0.5 + 0.35 * rings + 0.3 * (grain - 0.5), 0, 1))


def _marble(rng, size, base, accent):
    y, x = np.mgrid[0:size, 0:size] / size
    turbulence = fractal_noise(rng, size, 5, 4)
    veins = np.abs(np.sin((x + y) * rng.uniform(3, 6) * np.pi + 6.0 * turbulence))
    return _mix(accent, base, veins**0.4)


def _speckle(rng, size, base, accent):
    return _mix(base, accent, fractal_noise(rng, size, 6, 8) ** 1.5)


def _tiles(rng, size, base, accent):
    tiles = int(rng.integers(3, 7))
    y, x = np.mgrid[0:size, 0:size] * tiles / size
    grout = (np.minimum(x % 1, y % 1) < 0.06).astype(float)
    tile_shade = rng.random((tiles + 1, tiles + 1))[y.astype(int), x.astype(int)]
    colour = _mix(base, base * 0.75 + accent * 0.25, tile_shade)
    return colour * (1 - grout[..., None]) + accent[None, None, :] * 0.35 * grout[..., None]


PATTERNS: dict[str, TexturePattern] = {
    "checker": _checker,
    "stripes": _stripes,
    "wood": _wood,
    "marble": _marble,
    "speckle": _speckle,
    "tiles": _tiles,
}


def random_colour(rng: np.random.Generator, saturation: float = 0.7, value: float = 0.8) -> np.ndarray:
    """A random colour [3] in [0, 1] with the given HSV saturation and value."""
    hue = rng.random()
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    return value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def make_texture(
    seed: int,
    pattern: str | None = None,
    size: int = 256,
    base: np.ndarray | None = None,  # [3] in [0, 1]
    accent: np.ndarray | None = None,  # [3] in [0, 1]
) -> np.ndarray:  # [size, size, 3] uint8
    """A seeded procedural texture; ``pattern`` is one of ``PATTERNS`` (random when None)."""
    rng = np.random.default_rng(seed)
    if pattern is None:
        pattern = sorted(PATTERNS)[int(rng.integers(len(PATTERNS)))]
    if pattern not in PATTERNS:
        raise ValueError(f"pattern={pattern!r} is not valid; choose one of {', '.join(map(repr, sorted(PATTERNS)))}")
    base = random_colour(rng) if base is None else np.asarray(base, dtype=float)
    accent = random_colour(rng, 0.5, 0.35) if accent is None else np.asarray(accent, dtype=float)
    image = PATTERNS[pattern](rng, size, base, accent)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
