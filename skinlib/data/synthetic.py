"""Synthetic dermoscopy data written in the real on-disk layouts (HAM10000, ISIC 2018 Task 3, ISIC archive).

The classes differ the way the real ones do, in colour, size, border irregularity and texture
(pigment network, blotches, milia, scale, vessels, lagoons, a central scar), each drawn with wide
overlap, and about one lesion in five borrows part of its look from a class it is often confused
with (nv/mel, bkl/mel, bcc/akiec, ...). A CNN can learn them; handcrafted features catch part of it;
nothing is identifiable from one pixel statistic, and no model can reach 100%.

Several images per lesion, repeated shots of one session as in HAM10000 (a few degrees of turn, a few percent of
zoom, about 1% of shift, similar lighting; the same hair and marks), class-dependent metadata
(age, sex, site, dx_type), real class proportions, all from one seed: the same seed gives the same
files on any machine and with any number of worker processes.

Command line::

    python -m skinlib.data.synthetic OUT [--n N] [--seed S] [--layout ham10000 isic2018 isic_archive]
                                         [--full-size] [--size 300x225] [--jobs J]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from .. import paths
from .labels import CLASSES, ISIC2018_COLUMNS, MALIGNANT

GENERATOR_VERSION = 4  # 2: archive export with malignant subtypes, diagnosis_2, size signal; 3: shots of a session;
#                        4: 40 images of each rare class from 600 images on (was 15)
SYNTHETIC_MARKER = "SYNTHETIC.json"

#: HAM10000 image and lesion counts per class (images, lesions): the real proportions.
HAM_COUNTS: dict[str, tuple[int, int]] = {
    "akiec": (327, 228), "bcc": (514, 327), "bkl": (1099, 727), "df": (115, 73),
    "mel": (1113, 614), "nv": (6705, 5403), "vasc": (142, 98),
}
MIN_PER_CLASS = 15  # keeps df and vasc present in every split of a small dataset
#: images of each rare class in a dataset of 600 images or more (n / 15 below that, never under MIN_PER_CLASS): the
#: default's 600 images then hold 40 of akiec, bcc, df and vasc each, so its test split has 6 of each, not 3; with 3,
#: one image was worth 0.048 of balanced accuracy and a default run's score swung with the thread count
RARE_CLASS_IMAGES = 40
DEFAULT_N = 600
DEFAULT_SIZE = (300, 225)
FULL_SIZE = (600, 450)


@dataclass(frozen=True)
class Look:
    """How a class tends to look; every lesion draws its own values around these."""

    color: tuple[float, float, float]      # mean lesion RGB in [0, 1]
    size: float                            # mean radius as a fraction of the image's shorter side
    irregular: float                       # border harmonic amplitude
    blur: float                            # border softness (fraction of the radius)
    network: float                         # reticular pigment network strength
    blotch: float                          # strength of a second colour in blotches
    blotch_color: tuple[float, float, float]
    texture: float                         # fine cerebriform / scaly texture
    dots: float                            # expected number of dots (globules, milia, scale)
    dot_color: tuple[float, float, float]
    vessels: float                         # expected number of vessels
    lagoons: float                         # expected number of red-purple lagoons
    scar: float                            # central white patch strength (dermatofibroma)


LOOKS: dict[str, Look] = {
    "nv": Look((0.55, 0.38, 0.28), 0.21, 0.04, 0.14, 0.40, 0.10, (0.40, 0.26, 0.19), 0.03, 1, (0.35, 0.22, 0.16), 0, 0, 0),
    "mel": Look((0.43, 0.29, 0.24), 0.27, 0.13, 0.07, 0.28, 0.55, (0.30, 0.30, 0.38), 0.06, 5, (0.18, 0.13, 0.13), 0.5, 0, 0.08),
    "bkl": Look((0.62, 0.48, 0.36), 0.24, 0.08, 0.05, 0.06, 0.22, (0.48, 0.37, 0.28), 0.30, 4, (0.88, 0.84, 0.68), 0, 0, 0),
    "bcc": Look((0.74, 0.54, 0.51), 0.21, 0.07, 0.11, 0.02, 0.35, (0.45, 0.46, 0.56), 0.05, 1, (0.50, 0.50, 0.60), 5, 0, 0),
    "akiec": Look((0.74, 0.46, 0.41), 0.23, 0.10, 0.16, 0.02, 0.18, (0.62, 0.36, 0.33), 0.18, 10, (0.92, 0.89, 0.85), 2, 0, 0),
    "df": Look((0.60, 0.43, 0.33), 0.15, 0.04, 0.18, 0.22, 0.10, (0.50, 0.34, 0.26), 0.04, 0, (0.8, 0.7, 0.6), 0, 0, 0.65),
    "vasc": Look((0.64, 0.27, 0.31), 0.18, 0.06, 0.07, 0.0, 0.25, (0.45, 0.14, 0.30), 0.04, 0, (0.5, 0.2, 0.3), 1, 7, 0),
}
#: Classes each class is often mistaken for; a "borrowing" lesion blends towards one of them.
CONFUSED_WITH: dict[str, tuple[str, ...]] = {
    "nv": ("mel", "bkl", "df"), "mel": ("nv", "bkl"), "bkl": ("mel", "nv", "akiec"), "bcc": ("akiec", "bkl", "vasc"),
    "akiec": ("bcc", "bkl"), "df": ("nv", "bkl"), "vasc": ("bcc", "akiec"),
}
BORROW_P = 0.22

# Metadata, roughly as in HAM10000.
AGE = {"akiec": (67, 11), "bcc": (67, 12), "bkl": (64, 13), "df": (52, 14), "mel": (61, 15), "nv": (47, 16), "vasc": (50, 21)}
MALE_P = {"akiec": 0.65, "bcc": 0.60, "bkl": 0.55, "df": 0.50, "mel": 0.60, "nv": 0.50, "vasc": 0.45}
SITES = ("abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand", "lower extremity",
         "neck", "scalp", "trunk", "unknown", "upper extremity")
SITE_P: dict[str, dict[str, float]] = {
    "akiec": {"face": .45, "upper extremity": .15, "lower extremity": .1, "scalp": .07, "back": .06, "neck": .05, "chest": .04, "hand": .04, "trunk": .02, "ear": .02},
    "bcc": {"back": .3, "face": .2, "lower extremity": .1, "trunk": .1, "upper extremity": .08, "chest": .08, "neck": .05, "abdomen": .04, "scalp": .03, "ear": .02},
    "bkl": {"face": .3, "back": .2, "lower extremity": .1, "trunk": .1, "upper extremity": .1, "chest": .08, "abdomen": .06, "neck": .03, "scalp": .02, "unknown": .01},
    "df": {"lower extremity": .7, "upper extremity": .15, "trunk": .08, "back": .04, "abdomen": .03},
    "mel": {"back": .25, "upper extremity": .15, "lower extremity": .15, "face": .12, "trunk": .1, "chest": .07, "abdomen": .05, "neck": .03, "scalp": .03, "unknown": .03, "acral": .02},
    "nv": {"lower extremity": .25, "back": .22, "trunk": .18, "abdomen": .12, "upper extremity": .1, "chest": .04, "unknown": .03, "foot": .02, "face": .02, "genital": .01, "neck": .01},
    "vasc": {"lower extremity": .3, "trunk": .25, "abdomen": .15, "back": .1, "upper extremity": .1, "face": .05, "chest": .05},
}
DX_TYPE_P: dict[str, dict[str, float]] = {
    "akiec": {"histo": 1.0}, "bcc": {"histo": 1.0}, "bkl": {"histo": .6, "consensus": .3, "confocal": .1},
    "df": {"histo": .45, "consensus": .55}, "mel": {"histo": 1.0},
    "nv": {"follow_up": .55, "histo": .35, "consensus": .1}, "vasc": {"histo": .5, "consensus": .5},
}
CONFIRM_TYPE = {"histo": "histopathology", "follow_up": "serial imaging showing no change",
                "consensus": "single image expert consensus", "confocal": "confocal microscopy with consensus dermoscopy"}
ARCHIVE_SITE = {"back": "posterior torso", "chest": "anterior torso", "abdomen": "anterior torso", "trunk": "anterior torso",
                "face": "head/neck", "scalp": "head/neck", "ear": "head/neck", "neck": "head/neck", "acral": "palms/soles",
                "foot": "palms/soles", "hand": "palms/soles", "genital": "oral/genital", "lower extremity": "lower extremity",
                "upper extremity": "upper extremity", "unknown": ""}
#: Archive diagnoses (``diagnosis_3``) per class, with their shares: the malignant classes are split into the
#: subtypes of study D (basal cell carcinoma, melanoma, melanoma metastasis, squamous cell carcinoma).
ARCHIVE_DIAGNOSIS: dict[str, dict[str, float]] = {
    "akiec": {"Squamous cell carcinoma in situ": .5, "Squamous cell carcinoma, Invasive": .5},
    "bcc": {"Basal cell carcinoma": 1.0}, "bkl": {"Seborrheic keratosis": .6, "Solar lentigo": .4},
    "df": {"Dermatofibroma": 1.0}, "mel": {"Melanoma Invasive": .55, "Melanoma in situ": .2, "Melanoma metastasis": .25},
    "nv": {"Nevus": 1.0}, "vasc": {"Hemangioma": 1.0},
}
#: The archive's ``diagnosis_2`` level per class.
ARCHIVE_GROUP = {"akiec": "Malignant epidermal proliferations", "bcc": "Malignant adnexal epithelial proliferations - Follicular",
                 "bkl": "Benign epidermal proliferations", "df": "Benign soft tissue proliferations - Fibro-histiocytic",
                 "mel": "Malignant melanocytic proliferations (Melanoma)", "nv": "Benign melanocytic proliferations",
                 "vasc": "Benign soft tissue proliferations - Vascular"}
#: Clinical diameter added to malignant lesions (mm): size carries signal the image does not fully show.
MALIGNANT_EXTRA_MM = 2.5
ARCHIVE_MIX = {"akiec": .05, "bcc": .10, "bkl": .10, "df": .025, "mel": .15, "nv": .55, "vasc": .025}
#: Images of the ISIC archive export written with ``--full-size``: an export of realistic size (tens of thousands
#: of images; patients with one to four lesions, a lesion with several images). Its malignant share is about 30%,
#: so study D's balanced subset of 5,000 images per class fits; the 10,000 one needs a larger (real) export.
ARCHIVE_FULL_IMAGES = 25_000


# ----------------------------------------------------------------------------------------------- lesions
@dataclass(frozen=True)
class Lesion:
    """One synthetic lesion: its class, identity, drawn appearance and metadata."""

    dx: str
    lesion_id: str
    seed: tuple[int, ...]
    look: Look
    age: float
    sex: str
    site: str
    dx_type: str
    patient_id: str = ""


def _pick(rng: np.random.Generator, probs: dict[str, float]) -> str:
    keys = list(probs)
    p = np.array([probs[k] for k in keys], float)
    return keys[rng.choice(len(keys), p=p / p.sum())]


def draw_look(dx: str, rng: np.random.Generator) -> Look:
    """A lesion's own appearance: the class look with per-lesion spread, sometimes blended with a confuser."""
    base = LOOKS[dx]
    if rng.random() < BORROW_P:
        other = LOOKS[CONFUSED_WITH[dx][rng.integers(len(CONFUSED_WITH[dx]))]]
        w = rng.uniform(0.35, 0.8)
        base = Look(*[_blend(a, b, w) for a, b in zip(asdict(base).values(), asdict(other).values())])

    def jitter(value: float, rel: float) -> float:
        return float(max(0.0, value * (1 + rel * rng.standard_normal())))

    tone = 0.07 * rng.standard_normal()                          # lighter / darker, then a little hue spread
    color = tuple(float(np.clip(c + tone + 0.035 * rng.standard_normal(), 0.05, 0.95)) for c in base.color)
    return replace(
        base, color=color, size=float(np.clip(base.size * (1 + 0.25 * rng.standard_normal()), 0.08, 0.42)),
        irregular=jitter(base.irregular, 0.5), blur=max(0.02, jitter(base.blur, 0.4)),
        network=jitter(base.network, 0.5), blotch=jitter(base.blotch, 0.5), texture=jitter(base.texture, 0.5),
        dots=jitter(base.dots, 0.6), vessels=jitter(base.vessels, 0.6), lagoons=jitter(base.lagoons, 0.5),
        scar=jitter(base.scar, 0.4))


def _blend(a, b, w: float):
    if isinstance(a, tuple):
        return tuple((1 - w) * x + w * y for x, y in zip(a, b))
    return (1 - w) * a + w * b


def draw_metadata(dx: str, rng: np.random.Generator) -> dict:
    """Age (5-year steps, a few missing), sex, site and dx_type, each depending on the class."""
    mean, sd = AGE[dx]
    age = float(np.clip(5 * round((mean + sd * rng.standard_normal()) / 5), 0, 85)) if rng.random() > 0.006 else math.nan
    r = rng.random()
    sex = "unknown" if r < 0.006 else ("male" if r < 0.006 + MALE_P[dx] * 0.994 else "female")
    return {"age": age, "sex": sex, "site": _pick(rng, SITE_P[dx]), "dx_type": _pick(rng, DX_TYPE_P[dx])}


# ---------------------------------------------------------------------------------------------- drawing
@lru_cache(maxsize=4)
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def _noise(rng: np.random.Generator, width: int, height: int, cells: float) -> np.ndarray:
    """Smooth random field in [0, 1] with about `cells` blobs across the shorter side."""
    gh = max(2, int(round(cells)))
    gw = max(2, int(round(cells * width / height)))
    small = rng.random((gh, gw), dtype=np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((width, height), Image.BICUBIC))


#: How much the images of one lesion differ. They are repeated shots of one session, as HAM10000's are: the same pose
#: within a few degrees, a few percent of zoom, about 1% of shift, similar lighting, the same hair, dots and vessels.
#: Shots this alike are what makes the studies' image-level split leak (see 02, and the split cost in 03 and 10).
SHOT_ZOOM, SHOT_SHIFT, SHOT_TURN = 0.03, 0.01, 0.05       # sd of log zoom, of the centre (fraction of the side), radians
SHOT_LIGHT, SHOT_WHITE = 0.02, 0.01                       # sd of log exposure and of each channel's white balance
WORK_SIDE = 320  # images are drawn with at most this many pixels on the long side, then upscaled


def render(lesion: Lesion, shot: int, width: int, height: int) -> np.ndarray:
    """One dermoscopic image (uint8 H x W x 3) of `lesion`; `shot` varies zoom, pose and lighting a little.

    Drawn at most WORK_SIDE pixels wide and upscaled (bicubic): dermoscopic images are smooth at the
    scale of HAM10000's 600 x 450, and this keeps ``--full-size`` generation within two minutes on 2 cores.
    """
    return np.asarray(render_image(lesion, shot, width, height))


def render_image(lesion: Lesion, shot: int, width: int, height: int) -> Image.Image:
    """As :func:`render`, as a PIL image (what the writer saves)."""
    scale = min(1.0, WORK_SIDE / max(width, height))
    if scale < 1.0:
        small = _draw(lesion, shot, max(8, round(width * scale)), max(8, round(height * scale)))
        return small.resize((width, height), Image.BICUBIC)
    return _draw(lesion, shot, width, height)


#: Random streams fixed per lesion (the same in all its shots), each drawn apart so that adding one changes no other.
_SESSION_STREAMS = {"marks": 7, "pose": 8, "texture": 9, "hair": 10, "vignette": 11}


def _session(lesion: Lesion, what: str) -> np.random.Generator:
    return np.random.default_rng((*lesion.seed, _SESSION_STREAMS[what]))


def _rgb(values) -> np.ndarray:
    return np.asarray(values, np.float32)[:, None, None]


def _draw(lesion: Lesion, shot: int, width: int, height: int) -> Image.Image:
    # Channel-first (3, H, W) float32 throughout: every numpy inner loop then runs over whole rows.
    look = lesion.look
    lrng = np.random.default_rng(lesion.seed)                    # fixed per lesion: shape and texture
    rng = np.random.default_rng((*lesion.seed, shot))           # varies per image
    short = min(width, height)
    xs, ys = _grid(width, height)

    skin = np.array([0.92, 0.76, 0.66]) * (1 - 0.35 * lrng.beta(2, 4)) + 0.03 * lrng.standard_normal(3)
    zoom = float(np.exp(SHOT_ZOOM * rng.standard_normal()))
    cx = width / 2 + SHOT_SHIFT * width * rng.standard_normal()
    cy = height / 2 + SHOT_SHIFT * height * rng.standard_normal()
    rotation = _session(lesion, "pose").uniform(0, 2 * np.pi) + SHOT_TURN * rng.standard_normal()
    mrng = _session(lesion, "marks")                             # dots, lagoons, vessels: the lesion's own
    radius = look.size * short * zoom

    ks = np.arange(2, 8)
    amps = look.irregular * lrng.standard_normal(6) / ks ** 0.8
    amps[0] += 0.12 * lrng.standard_normal()                     # some elongation for every class
    phases = lrng.uniform(0, 2 * np.pi, 6)
    theta_tab = np.linspace(-np.pi, np.pi, 256, endpoint=False)
    r_tab = radius * (1 + (amps[:, None] * np.cos(ks[:, None] * (theta_tab + rotation) + phases[:, None])).sum(0))
    r_tab = np.maximum(r_tab, 0.3 * radius).astype(np.float32)
    dx_, dy_ = xs - cx, ys - cy
    theta = np.arctan2(dy_, dx_)
    rho = np.sqrt(dx_ * dx_ + dy_ * dy_) / r_tab[((theta + np.pi) * (256 / (2 * np.pi))).astype(np.int32) & 255]
    mask = np.clip((1 - rho) / look.blur + 0.5, 0, 1)
    mask = mask * mask * (3 - 2 * mask)                          # smoothstep

    cells = short / max(radius, 4)
    lesion_rgb = _rgb(look.color) * (1 - 0.22 * np.clip(1 - rho, 0, 1))[None]   # darker centre
    if look.blotch > 0.02:
        blot = np.clip((_noise(lrng, width, height, 2.5 * cells) - 0.45) * (3 * look.blotch), 0, 1)
        lesion_rgb += blot[None] * (_rgb(look.blotch_color) - lesion_rgb)
    if look.network > 0.02:
        field = _noise(lrng, width, height, 9 * cells)
        lesion_rgb *= (1 - 0.55 * look.network * np.clip(1 - 16 * np.abs(field - 0.5), 0, 1))[None]
    if look.texture > 0.02:
        lesion_rgb += (look.texture * 0.5 * (_noise(_session(lesion, "texture"), width, height, 30 * cells) - 0.5))[None]
    if look.scar > 0.02:
        off = 0.25 * lrng.standard_normal(2) * radius
        scar = np.exp(-(((xs - cx - off[0]) ** 2 + (ys - cy - off[1]) ** 2) / (0.18 * radius) ** 2))
        lesion_rgb += (look.scar * scar)[None] * (_rgb([0.93, 0.86, 0.82]) - lesion_rgb)

    overlay = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    n_dots, n_lagoons, n_vessels = mrng.poisson(look.dots), mrng.poisson(look.lagoons), mrng.poisson(look.vessels)

    def inside(n: int) -> np.ndarray:
        ang = mrng.uniform(0, 2 * np.pi, n) + rotation
        rad = radius * np.sqrt(mrng.uniform(0, 0.7, n))
        return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)

    def rgba(c, alpha: int) -> tuple[int, int, int, int]:
        return (*[int(255 * np.clip(v, 0, 1)) for v in c], alpha)

    for x, y in inside(n_dots):
        s = max(1.0, short * mrng.uniform(0.005, 0.014))
        draw.ellipse((x - s, y - s, x + s, y + s), fill=rgba(look.dot_color, 220))
    for x, y in inside(n_lagoons):
        s = max(2.0, radius * mrng.uniform(0.08, 0.2))
        tone = (0.60, 0.12, 0.22) if mrng.random() < 0.5 else (0.42, 0.14, 0.36)
        draw.ellipse((x - s, y - s * mrng.uniform(0.6, 1), x + s, y + s), fill=rgba(tone, 200))
    for x, y in inside(n_vessels):
        pts, ang = [(x, y)], mrng.uniform(0, 2 * np.pi)
        for _ in range(6):
            ang += mrng.normal(0, 0.6)
            step = radius * 0.15
            pts.append((pts[-1][0] + step * np.cos(ang), pts[-1][1] + step * np.sin(ang)))
        draw.line(pts, fill=rgba((0.72, 0.12, 0.18), 230), width=max(1, int(short * 0.006)))

    skin_rgb = _rgb(skin)
    image = skin_rgb + mask[None] * (lesion_rgb - skin_rgb)
    image *= (1 + 0.05 * (_noise(lrng, width, height, 3) - 0.5))[None]      # uneven skin
    if n_dots + n_lagoons + n_vessels:
        over = np.stack([np.asarray(band, np.float32) for band in overlay.split()]) / 255
        image += (over[3] * mask)[None] * (over[:3] - image)

    hrng = _session(lesion, "hair")
    if hrng.random() < 0.35:                                     # hair, drawn over everything
        hair = Image.new("L", (width, height), 0)
        hd = ImageDraw.Draw(hair)
        for _ in range(hrng.integers(1, 6)):
            x0, y0 = hrng.uniform(0, width), hrng.uniform(0, height)
            ang = hrng.uniform(0, 2 * np.pi)
            pts = [(x0, y0)]
            for _ in range(8):
                ang += hrng.normal(0, 0.15)
                pts.append((pts[-1][0] + 0.08 * short * np.cos(ang), pts[-1][1] + 0.08 * short * np.sin(ang)))
            hd.line(pts, fill=200, width=max(1, int(short * 0.005)))
        image += (np.asarray(hair, np.float32) / 255)[None] * (_rgb([0.18, 0.12, 0.1]) - image)

    gain = 255 * np.exp(SHOT_LIGHT * rng.standard_normal()) * (1 + SHOT_WHITE * rng.standard_normal(3))
    image *= _rgb(gain)                                          # exposure and white balance, to 0..255
    if _session(lesion, "vignette").random() < 0.3:              # dermoscope vignette
        rr = np.sqrt((xs - width / 2) ** 2 + (ys - height / 2) ** 2) / (0.62 * width)
        image *= np.clip(1.6 - rr * rr, 0.05, 1)[None]
    noise = np.frombuffer(rng.bytes(image.size), np.uint8).reshape(image.shape) & 7   # sensor noise, +-3.5 levels
    image += noise
    image -= 3.0
    bands = np.clip(image, 0, 255).astype(np.uint8)
    return Image.merge("RGB", [Image.fromarray(band) for band in bands])


# ------------------------------------------------------------------------------------------- datasets
def class_counts(n: int) -> dict[str, int]:
    """Images per class for a dataset of `n` images: real proportions, at least :func:`class_floor` each (nv, the
    largest class, gives up what the rare classes gain)."""
    total = sum(i for i, _ in HAM_COUNTS.values())
    floor = class_floor(n)
    counts = {c: max(floor, round(n * HAM_COUNTS[c][0] / total)) for c in CLASSES}
    counts["nv"] = max(floor, n - sum(v for c, v in counts.items() if c != "nv"))
    return counts


def class_floor(n: int) -> int:
    """The fewest images of a class in a dataset of `n` images: :data:`RARE_CLASS_IMAGES` from 600 images on, n / 15
    below that, never under :data:`MIN_PER_CLASS`."""
    return min(RARE_CLASS_IMAGES, max(MIN_PER_CLASS, n // 15))


def make_lesions(counts: dict[str, int], seed: int, stream: int, prefix: str, id_start: int,
                 patients: bool = False) -> list[tuple[Lesion, int]]:
    """Lesions with their number of images, so that each class gets exactly its count of images."""
    rng = np.random.default_rng((seed, stream))
    out: list[tuple[Lesion, int]] = []
    for dx in CLASSES:
        images, lesions = HAM_COUNTS[dx]
        extra = images / lesions - 1
        left = counts[dx]
        while left > 0:
            k = int(min(left, 1 + min(rng.poisson(extra), 5)))
            meta = draw_metadata(dx, rng)
            look = draw_look(dx, rng)
            out.append((Lesion(dx, "", (seed, stream, len(out)), look, meta["age"], meta["sex"], meta["site"],
                               meta["dx_type"]), k))
            left -= k
    order = rng.permutation(len(out))                            # ids must not reveal the class
    out = [out[i] for i in order]
    named = []
    patient, patient_left = 0, 0
    for i, (lesion, k) in enumerate(out):
        pid = ""
        if patients:
            if patient_left == 0:
                patient, patient_left = patient + 1, int(rng.integers(1, 5))
            patient_left -= 1
            pid = f"IP_{id_start + patient:07d}"
        named.append((replace(lesion, lesion_id=f"{prefix}{id_start + i:07d}", patient_id=pid), k))
    return named


def _expand(lesions: list[tuple[Lesion, int]], rng: np.random.Generator, first_id: int) -> list[tuple[Lesion, int, str]]:
    shots = [(lesion, s) for lesion, k in lesions for s in range(k)]
    order = rng.permutation(len(shots))
    return [(*shots[j], f"ISIC_{first_id + i:07d}") for i, j in enumerate(order)]


def _write_one(task: tuple[Lesion, int, str, str, int, int]) -> None:
    lesion, shot, path, _, width, height = task
    render_image(lesion, shot, width, height).save(path, quality=90)


def _write_images(tasks: list[tuple], jobs: int, progress: bool) -> None:
    started = time.time()
    if jobs <= 1:
        for t in tasks:
            _write_one(t)
    else:
        with ProcessPoolExecutor(jobs) as pool:
            for i, _ in enumerate(pool.map(_write_one, tasks, chunksize=16)):
                if progress and (i + 1) % 1000 == 0:
                    print(f"  {i + 1}/{len(tasks)} images, {time.time() - started:.0f}s", file=sys.stderr, flush=True)


def _ham_rows(shots: list[tuple[Lesion, int, str]]) -> pd.DataFrame:
    return pd.DataFrame({
        "lesion_id": [l.lesion_id for l, _, _ in shots], "image_id": [i for _, _, i in shots],
        "dx": [l.dx for l, _, _ in shots], "dx_type": [l.dx_type for l, _, _ in shots],
        "age": [l.age for l, _, _ in shots], "sex": [l.sex for l, _, _ in shots],
        "localization": [l.site for l, _, _ in shots],
    })


def _onehot(rows: pd.DataFrame) -> pd.DataFrame:
    table = pd.DataFrame({"image": rows["image_id"]})
    for col in ISIC2018_COLUMNS:
        table[col] = (rows["dx"].str.upper() == col).astype(float)
    return table


def generate(
    out: str | Path,
    n: int = DEFAULT_N,
    seed: int = 0,
    layouts: tuple[str, ...] = ("ham10000",),
    size: tuple[int, int] = DEFAULT_SIZE,
    full_size: bool = False,
    jobs: int | None = None,
    progress: bool = False,
) -> Path:
    """Write a synthetic dataset under `out`, one sub-folder per layout, and return `out`.

    Args:
        out: destination folder (created; must not already hold a synthetic dataset).
        n: about how many HAM10000 images (ignored with `full_size`).
        seed: everything (images, metadata, ids) is a function of this seed.
        layouts: any of ``ham10000``, ``isic2018`` (its training set is the HAM10000 images, plus an
            official-style validation and test set), ``isic_archive`` (a separate patient cohort).
        size: (width, height) of the images.
        full_size: the real HAM10000 counts (10,015 images of 7,470 lesions) at 600 x 450, and an ISIC archive
            export of :data:`ARCHIVE_FULL_IMAGES` images at the same size (with ``isic_archive``).
        jobs: worker processes (default: all cores); results do not depend on it.
        progress: print a line every 1000 images.
    """
    out = Path(out)
    unknown = set(layouts) - {"ham10000", "isic2018", "isic_archive"}
    if unknown:
        raise ValueError(f"unknown layout(s) {sorted(unknown)}; choose from ham10000, isic2018, isic_archive")
    if (out / SYNTHETIC_MARKER).exists():
        raise FileExistsError(f"{out} already holds a synthetic dataset; delete it or choose another folder")
    if out.is_dir() and any(out.iterdir()):       # checked before the minutes of writing, not at the final rename
        held = ", ".join(sorted(p.name for p in out.iterdir())[:3])
        raise FileExistsError(f"{out} is not empty (it holds {held}, ...): the dataset is written into a folder of its "
                              "own; give a new or empty folder")
    if full_size:
        counts, size = {c: HAM_COUNTS[c][0] for c in CLASSES}, FULL_SIZE
    else:
        counts = class_counts(n)
    width, height = size
    jobs = jobs or os.cpu_count() or 1
    tmp = out.with_name(out.name + f".partial-{paths.owner()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tasks: list[tuple] = []
    rng = np.random.default_rng((seed, 99))
    ham = _expand(make_lesions(counts, seed, 1, "HAM_", 0), rng, 24306)
    ham_rows = _ham_rows(ham)
    ham_dir = tmp / "ham10000"
    half = (len(ham) + 1) // 2
    for part in (1, 2):
        (ham_dir / f"HAM10000_images_part_{part}").mkdir(parents=True)
    for i, (lesion, shot, image_id) in enumerate(ham):
        folder = ham_dir / f"HAM10000_images_part_{1 if i < half else 2}"
        tasks.append((lesion, shot, str(folder / f"{image_id}.jpg"), image_id, width, height))
    ham_rows.sort_values("lesion_id").to_csv(ham_dir / "HAM10000_metadata.csv", index=False)

    extra_sets: dict[str, list] = {}
    if "isic2018" in layouts:
        next_id = 24306 + len(ham)
        for stream, name, frac in ((2, "Validation", 193 / 10015), (3, "Test", 1512 / 10015)):
            sub_counts = {c: max(2, round(v * frac)) for c, v in counts.items()}
            shots = _expand(make_lesions(sub_counts, seed, stream, "HAMX", next_id), rng, next_id)
            next_id += len(shots)
            folder = tmp / "isic2018" / f"ISIC2018_Task3_{name}_Input"
            folder.mkdir(parents=True)
            extra_sets[name] = shots
            tasks += [(l, s, str(folder / f"{i}.jpg"), i, width, height) for l, s, i in shots]
    if "isic_archive" in layouts:
        total = ARCHIVE_FULL_IMAGES if full_size else sum(counts.values())
        archive_counts = {c: max(MIN_PER_CLASS, round(total * ARCHIVE_MIX[c])) for c in CLASSES}
        archive = _expand(make_lesions(archive_counts, seed, 4, "IL_", 0, patients=True), rng, 100000)
        folder = tmp / "isic_archive"
        folder.mkdir(parents=True)
        tasks += [(l, s, str(folder / f"{i}.jpg"), i, width, height) for l, s, i in archive]
        _write_archive_csv(archive, folder / "metadata.csv", np.random.default_rng((seed, 5)))

    _write_images(tasks, jobs, progress)

    if "isic2018" in layouts:
        base = tmp / "isic2018"
        train_in = base / "ISIC2018_Task3_Training_Input"
        train_in.mkdir(parents=True)
        for _, _, path, image_id, _, _ in tasks[: len(ham)]:
            dest = train_in / f"{image_id}.jpg"
            try:
                os.link(path, dest)
            except OSError:
                shutil.copyfile(path, dest)
        for name, rows in (("Training", ham_rows), *((k, _ham_rows(v)) for k, v in extra_sets.items())):
            gt_dir = base / f"ISIC2018_Task3_{name}_GroundTruth"
            gt_dir.mkdir(exist_ok=True)
            _onehot(rows).to_csv(gt_dir / f"ISIC2018_Task3_{name}_GroundTruth.csv", index=False, float_format="%.1f")
            for extra in ("LICENSE.txt", "ATTRIBUTION.txt"):
                (base / f"ISIC2018_Task3_{name}_Input" / extra).write_text("Synthetic images made by skinlib.\n")
        pd.DataFrame({"image": ham_rows["image_id"], "lesion_id": ham_rows["lesion_id"],
                      "diagnosis_confirm_type": ham_rows["dx_type"].map(CONFIRM_TYPE)}).to_csv(
            base / "ISIC2018_Task3_Training_LesionGroupings.csv", index=False)

    record = {"generator": "skinlib.data.synthetic", "version": GENERATOR_VERSION, "seed": seed,
              "n": len(ham), "size": [width, height], "layouts": sorted(set(layouts) | {"ham10000"}),
              "full_size": full_size, "note": "Synthetic images: numbers computed on them say nothing about real lesions."}
    for folder in [tmp, *[p for p in tmp.iterdir() if p.is_dir()]]:
        (folder / SYNTHETIC_MARKER).write_text(json.dumps(record, indent=2))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not any(out.iterdir()):
        out.rmdir()
    tmp.rename(out)
    return out


def _write_archive_csv(shots: list[tuple[Lesion, int, str]], path: Path, rng: np.random.Generator) -> None:
    rows = []
    for lesion, _, image_id in shots:
        malignant = lesion.dx in MALIGNANT
        diag1 = "Malignant" if malignant else "Benign"
        diag2, diag3 = ARCHIVE_GROUP[lesion.dx], _pick(rng, ARCHIVE_DIAGNOSIS[lesion.dx])
        if rng.random() < 0.02:
            diag1, diag2, diag3 = "Indeterminate", "", ""
        size = 30 * lesion.look.size * rng.normal(1, 0.2) + (MALIGNANT_EXTRA_MM if malignant else 0.0)
        size_mm = "" if rng.random() < 0.4 else f"{max(1.0, size):.1f}"
        rows.append({
            "isic_id": image_id, "attribution": "skinlib synthetic", "copyright_license": "CC-0",
            "age_approx": "" if (rng.random() < 0.03 or math.isnan(lesion.age)) else int(lesion.age),
            "anatom_site_general": ARCHIVE_SITE[lesion.site],
            "clin_size_long_diam_mm": size_mm,
            "diagnosis_1": diag1, "diagnosis_2": diag2, "diagnosis_3": diag3,
            "diagnosis_confirm_type": CONFIRM_TYPE[lesion.dx_type],
            "image_type": "dermoscopic", "lesion_id": lesion.lesion_id, "patient_id": lesion.patient_id,
            "sex": "" if (rng.random() < 0.03 or lesion.sex == "unknown") else lesion.sex,
        })
    pd.DataFrame(rows).sort_values("isic_id").to_csv(path, index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skinlib.data.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="destination folder")
    parser.add_argument("--n", type=int, default=DEFAULT_N, help=f"about how many HAM10000 images (default {DEFAULT_N})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--layout", nargs="+", default=["ham10000"], choices=["ham10000", "isic2018", "isic_archive"],
                        help="layouts to write (default ham10000); each goes to its own sub-folder")
    parser.add_argument("--size", default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}", help="image size WxH (default 300x225)")
    parser.add_argument("--full-size", action="store_true",
                        help=f"the real counts (10,015 HAM10000 images; an ISIC archive export of "
                             f"{ARCHIVE_FULL_IMAGES:,} images) at 600x450")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must look like 300x225, not {args.size!r}")
    started = time.time()
    try:
        out = generate(args.out, n=args.n, seed=args.seed, layouts=tuple(args.layout), size=(width, height),
                       full_size=args.full_size, jobs=args.jobs, progress=True)
    except FileExistsError as exc:
        parser.error(str(exc))
    record = json.loads((out / SYNTHETIC_MARKER).read_text())
    print(f"wrote {record['n']} HAM10000 images ({'x'.join(map(str, record['size']))}, layouts: "
          f"{', '.join(record['layouts'])}) to {out} in {time.time() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
