"""Synthetic visual tasks (the smoke tier's multimodal data, PAPO): a small image and a question.

`count_colour`: "<image>how many red?" on a 28×28 image cut into a 4×4 grid of 7-pixel cells; each of
1–8 random cells holds one square (side 3–6 px, random offset, jittered shade) in red, green or blue on a
noisy dark background. The answer is how many squares have the asked colour (0–8; grader style plain),
so it cannot be read from the text: the model has to look. One cell is one patch of the tiny
vision tower (repro/models/tiny_vl.py), so PAPO's patch masking hides whole objects.

Images are `Image` values (raw RGB bytes, hashable), so a problem's identity is (prompt, image) and
held-out problems are excluded from training by that key (repro/data/synthetic.py `Problem.key`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

IMAGE_TOKEN = "<image>"  # the placeholder a processor expands into one token per image feature
GRID, CELL = 4, 7
SIZE = GRID * CELL  # 28 px
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 235)}
BACKGROUND = 30


@dataclass(frozen=True)
class Image:
    """An RGB image as raw bytes (row-major, uint8), hashable so it can key a problem."""

    height: int
    width: int
    data: bytes

    @classmethod
    def from_array(cls, pixels: np.ndarray) -> Image:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"an Image needs a uint8 array of shape [H, W, 3], got {pixels.dtype} {pixels.shape}")
        return cls(pixels.shape[0], pixels.shape[1], pixels.tobytes())

    def to_array(self) -> np.ndarray:
        return np.frombuffer(self.data, dtype=np.uint8).reshape(self.height, self.width, 3)  # [H, W, 3]


def draw_scene(objects: list[tuple[int, str, int, int, int]], noise_seed: int) -> Image:
    """Squares given as (cell, colour, side, dy, dx) on the GRID × GRID board; background noise from the seed."""
    noise = np.random.default_rng(noise_seed)
    pixels = BACKGROUND + noise.integers(0, 20, size=(SIZE, SIZE, 3))  # [H, W, 3]
    for cell, colour, side, dy, dx in objects:
        y, x = (cell // GRID) * CELL + dy, (cell % GRID) * CELL + dx
        shade = noise.integers(-25, 26)
        pixels[y : y + side, x : x + side] = np.clip(np.array(COLOURS[colour]) + shade, 0, 255)
    return Image.from_array(pixels.astype(np.uint8))


def count_colour(rng: random.Random) -> tuple[str, str, str, Image]:
    """'<image>how many red?' -> '3' (prompt, answer, SFT target, image); all randomness from `rng`."""
    names = sorted(COLOURS)
    cells = rng.sample(range(GRID * GRID), rng.randint(1, 8))
    objects = []
    for cell in cells:
        side = rng.randint(3, 6)
        objects.append((cell, rng.choice(names), side, rng.randint(0, CELL - side), rng.randint(0, CELL - side)))
    asked = rng.choice(names)
    answer = str(sum(colour == asked for _, colour, *_ in objects))
    image = draw_scene(objects, rng.randrange(2**32))
    return f"{IMAGE_TOKEN}how many {asked}?", answer, answer, image
