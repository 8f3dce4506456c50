#!/usr/bin/env python3
"""Procedural cartoon faces: the built-in demo dataset for the trainer.

The project's own addition beside Part 5 of the blog series "Generative Adversarial Network
(GAN) in TensorFlow", framed like its aligned CelebA crops:

- `make_demo_dataset`: a folder of faces drawn once from a seed (`--dataset demo`);
- `make_demo_pairs`: matching `front/` and `side/` folders for the pix2pix stage (`--pairs`);
- `draw_face`: one face from its `FaceParams`, from the front or in profile.
"""
import argparse
import colorsys
import functools
import json
import math
import multiprocessing
import os
import re
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from extras.utils import Progress, atomic_path, read_json

# Bump whenever a change to the drawing changes the pixels, so that stored datasets are redrawn.
DRAWING_VERSION = 1
# Written last: its presence with a matching spec means the folder is complete.
MARKER_NAME = ".demo_complete.json"
# PNG text chunk naming (index, size, seed, version) of each file, so a resumed run can tell
# which files already hold the image it would draw.
PNG_TAG_KEY = "demo_faces"
FACE_NAME = re.compile(r"face_(\d+)\.png$")
# Faces are drawn this many times larger, then downsampled, for anti-aliased edges.
OVERSAMPLE = 4
# Below this many images, starting worker processes costs more than it saves.
PARALLEL_MIN_IMAGES = 200

HAIR_STYLES = ("bald", "short", "long", "afro")
HAIR_STYLE_WEIGHTS = (0.1, 0.4, 0.35, 0.15)
# Human skin from very fair to very dark; a face's tone is a random point along this ramp.
SKIN_RAMP = ((255, 226, 205), (241, 194, 160), (224, 172, 130), (198, 140, 95),
             (160, 105, 65), (115, 72, 45), (78, 50, 34))
HAIR_COLORS = ((28, 22, 20), (62, 42, 30), (105, 70, 42), (140, 62, 32), (188, 104, 46),
               (176, 146, 96), (224, 196, 128), (150, 150, 150), (226, 224, 216))
HAIR_COLOR_WEIGHTS = (0.25, 0.2, 0.15, 0.06, 0.06, 0.08, 0.1, 0.06, 0.04)
IRIS_COLORS = ((70, 42, 22), (110, 70, 35), (60, 110, 170), (70, 125, 80), (130, 110, 60),
               (110, 120, 130))
SCLERA = (246, 244, 238)
EYE_LINE = (35, 25, 25)
MOUTH_INSIDE = (95, 28, 36)
TEETH = (240, 238, 228)


@dataclass(frozen=True)
class FaceParams:
    """Every random choice for one face (the demo dataset beside Part 5): placement in fractions
    of the image side; features in face units, `u` across (-1 left edge, +1 right), `v` down (-1
    crown, +1 chin), sizes in fractions of the half-width or half-height; colours RGB tuples."""

    centre_x: float
    centre_y: float
    half_width: float
    half_height: float
    jaw_squareness: float  # superellipse exponent of the lower face: < 2 pointed, > 2 square
    jaw_width: float  # face width at the chin relative to at the cheeks
    skin: tuple
    ear_size: float  # scales the ear, 1 = average
    hair_style: str  # one of HAIR_STYLES
    hair_color: tuple
    hair_volume: float  # hair thickness over the scalp, half-width units
    hairline_v: float  # height of the fringe edge at the face centre
    hairline_tilt: float  # fringe edge drop from left to right: a side-swept fringe
    hair_length: float  # how far long hair hangs below the chin, half-height units
    eye_v: float
    eye_spacing: float  # u of each eye centre
    eye_width: float  # half-width of an eye
    eye_openness: float  # eye height / eye width
    iris_color: tuple
    gaze: float  # sideways iris shift, -1..1 of its free travel
    brow_gap: float  # brow height above the eye centre
    brow_thickness: float
    brow_tilt: float  # how much higher the outer end is than the inner end
    brow_arch: float  # rise of the brow middle
    nose_v: float  # height of the nose tip
    nose_width: float  # half-width of the nostrils
    nose_length: float  # bridge length up from the tip
    mouth_v: float
    mouth_width: float  # half-width of the mouth
    smile: float  # rise of the mouth corners (negative: frown)
    mouth_open: float  # gap between the lips at the centre, 0 = closed
    lip_color: tuple
    background_top: tuple
    background_bottom: tuple
    shirt_color: tuple


def random_face_params(rng):
    """Draw every random choice for one face from a numpy Generator (demo data beside Part 5)."""
    skin = _jitter(rng, _ramp(SKIN_RAMP, rng.uniform()), 8)
    background_top = _random_color(rng, saturation=(0.1, 0.6), value=(0.35, 0.95))
    return FaceParams(
        centre_x=rng.uniform(0.47, 0.53),
        centre_y=rng.uniform(0.53, 0.57),
        half_width=rng.uniform(0.27, 0.33),
        half_height=rng.uniform(0.35, 0.39),
        jaw_squareness=rng.uniform(1.8, 3.0),
        jaw_width=rng.uniform(0.75, 1.0),
        skin=skin,
        ear_size=rng.uniform(0.8, 1.2),
        hair_style=_pick(rng, HAIR_STYLES, HAIR_STYLE_WEIGHTS),
        hair_color=_jitter(rng, _pick(rng, HAIR_COLORS, HAIR_COLOR_WEIGHTS), 10),
        hair_volume=rng.uniform(0.08, 0.2),
        hairline_v=rng.uniform(-0.7, -0.45),
        hairline_tilt=rng.uniform(-0.25, 0.25),
        hair_length=rng.uniform(0.1, 0.8),
        eye_v=rng.uniform(-0.4, -0.3),
        eye_spacing=rng.uniform(0.36, 0.46),
        eye_width=rng.uniform(0.16, 0.23),
        eye_openness=rng.uniform(0.45, 0.8),
        iris_color=_jitter(rng, _pick(rng, IRIS_COLORS), 12),
        gaze=rng.uniform(-1, 1),
        brow_gap=rng.uniform(0.13, 0.22),
        brow_thickness=rng.uniform(0.025, 0.06),
        brow_tilt=rng.uniform(-0.06, 0.08),
        brow_arch=rng.uniform(0.0, 0.05),
        nose_v=rng.uniform(0.1, 0.22),
        nose_width=rng.uniform(0.1, 0.18),
        nose_length=rng.uniform(0.15, 0.3),
        mouth_v=rng.uniform(0.44, 0.56),
        mouth_width=rng.uniform(0.28, 0.5),
        smile=rng.uniform(-0.04, 0.12),
        mouth_open=_pick(rng, (0.0, rng.uniform(0.05, 0.16))),  # half are closed
        lip_color=_mix(_shade(skin, 0.8), (170, 50, 60), rng.uniform(0.3, 0.6)),
        background_top=background_top,
        background_bottom=_shade(background_top, rng.uniform(0.55, 1.25)),
        shirt_color=_random_color(rng, saturation=(0.0, 0.8), value=(0.2, 0.9)),
    )


def _pick(rng, options, weights=None):
    """One of `options` (which may be tuples), with the given probabilities or uniformly."""
    return options[rng.choice(len(options), p=weights)]


def _ramp(stops, t):
    """Colour at fraction `t` along a piecewise-linear ramp of colour stops."""
    position = t * (len(stops) - 1)
    low = min(int(position), len(stops) - 2)
    return _mix(stops[low], stops[low + 1], position - low)


def _mix(a, b, t):
    """Colour `t` of the way from `a` to `b`."""
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _shade(color, factor):
    """Colour scaled in brightness by `factor` (below 1 darker), clipped to 0-255."""
    return tuple(int(min(255, round(c * factor))) for c in color)


def _jitter(rng, color, spread):
    """Colour with each channel moved by up to `spread`, so palette entries are not identical."""
    return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in color)


def _random_color(rng, saturation, value):
    """A colour of random hue with saturation and value drawn from the given ranges."""
    rgb = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(*value))
    return tuple(int(round(255 * c)) for c in rgb)


@dataclass(frozen=True)
class _FaceBox:
    """The face's centre and half-axes in canvas pixels: converts face units to pixels."""

    cx: float
    cy: float
    w: float
    h: float

    def at(self, u, v):
        """Canvas pixel of the face-unit point (u, v)."""
        return (self.cx + u * self.w, self.cy + v * self.h)

    def line_width(self, fraction):
        """Pixel width for a stroke `fraction` of the face half-height thick (at least 1)."""
        return max(1, int(round(fraction * self.h)))


def _ellipse_box(centre, rx, ry):
    """Bounding box of an ellipse with pixel radii `rx`, `ry` about `centre`."""
    x, y = centre
    return [x - rx, y - ry, x + rx, y + ry]


def _outline_color(p):
    """Darker skin for the strokes that outline skin shapes."""
    return _shade(p.skin, 0.6)


def draw_face(params, size=64, view="front"):
    """Draw one face as a `size` x `size` RGB image, `view` 'front' or 'side' (the same face in
    profile, facing right) (demo data beside Part 5)."""
    if view not in VIEW_DRAWERS:
        raise ValueError("unknown view %r; known views: %s" % (view, ", ".join(VIEW_DRAWERS)))
    canvas = OVERSAMPLE * size
    image = VIEW_DRAWERS[view](params, canvas)
    return image.resize((size, size), Image.LANCZOS)


def _draw_front(p, canvas):
    """The front view on a `canvas`-pixel square, painted back to front."""
    image = _background(p, canvas)
    draw = ImageDraw.Draw(image)
    box = _FaceBox(p.centre_x * canvas, p.centre_y * canvas,
                   p.half_width * canvas, p.half_height * canvas)
    for part in (_draw_shoulders, _draw_back_hair, _draw_ears, _draw_head, _draw_fringe,
                 _draw_eyes, _draw_brows, _draw_nose, _draw_mouth):
        part(draw, box, p)
    return image


def _background(p, canvas):
    """A vertical gradient from `background_top` to `background_bottom`."""
    t = np.linspace(0.0, 1.0, canvas)[:, None, None]
    top, bottom = np.array(p.background_top, float), np.array(p.background_bottom, float)
    rows = np.round(top + (bottom - top) * t).astype(np.uint8)
    return Image.fromarray(np.repeat(rows, canvas, axis=1), "RGB")


def _draw_shoulders(draw, box, p):
    """Shirt-covered shoulders at the bottom of the frame and the neck above them."""
    draw.ellipse([box.cx - 2.4 * box.w, box.cy + 0.95 * box.h,
                  box.cx + 2.4 * box.w, box.cy + 3.2 * box.h], fill=p.shirt_color)
    # The neck is in the chin's shadow, so a little darker than the face.
    draw.rectangle([box.cx - 0.5 * box.w, box.cy, box.cx + 0.5 * box.w, box.cy + 2 * box.h],
                   fill=_shade(p.skin, 0.85))


# Per hair style: how far the hair mass reaches beyond the scalp (in hair volumes), down to
# which height it shows behind the head, and whether it hangs down to the shoulders.
_BACK_HAIR = {"short": (1.0, -0.3, False), "long": (1.0, 0.0, True), "afro": (3.5, 0.25, False)}


def _draw_back_hair(draw, box, p):
    """The hair mass behind the head: a cap, hair hanging past the chin, or a wide afro."""
    if p.hair_style not in _BACK_HAIR:
        return
    reach, lowest_v, hangs = _BACK_HAIR[p.hair_style]
    pad = reach * p.hair_volume * box.w
    _draw_cap(draw, box, p.hair_color, pad, lowest_v, lowest_v)
    if hangs:
        draw.rounded_rectangle([box.cx - box.w - pad, box.cy,
                                box.cx + box.w + pad, box.cy + (1 + p.hair_length) * box.h],
                               radius=0.4 * box.w, fill=p.hair_color)


def _draw_cap(draw, box, color, pad, left_v, right_v, points=48):
    """The head outline grown by `pad` pixels, cut by a straight edge from `left_v` to `right_v`."""
    # A polygon, not PIL's chord: at fractional angles on large canvases that sometimes fills
    # the wrong side of the cut.
    rx, ry = box.w + pad, box.h + pad

    def angle(v):  # where the grown ellipse reaches height v; y grows downwards
        return math.asin(max(-1.0, min(1.0, v * box.h / ry)))

    arc = np.linspace(math.pi - angle(left_v), 2 * math.pi + angle(right_v), points)
    draw.polygon([(box.cx + rx * math.cos(t), box.cy + ry * math.sin(t)) for t in arc],
                 fill=color)


def _draw_ears(draw, box, p):
    """An ear on each side, between eye and nose height."""
    v = (p.eye_v + p.nose_v) / 2
    for side in (-1, 1):
        draw.ellipse(_ellipse_box(box.at(side * 0.97, v), 0.15 * p.ear_size * box.w,
                                  0.2 * p.ear_size * box.h),
                     fill=p.skin, outline=_outline_color(p), width=box.line_width(0.012))


def _draw_head(draw, box, p):
    """The face: an ellipse above the cheeks, a superellipse jaw below, outlined."""
    draw.polygon(_head_outline(box, p), fill=p.skin, outline=_outline_color(p),
                 width=box.line_width(0.015))


def _head_outline(box, p, points=72):
    """Polygon points of the head outline in canvas pixels."""
    outline = []
    for angle in np.linspace(0, 2 * math.pi, points, endpoint=False):
        c, s = math.cos(angle), math.sin(angle)
        if s > 0:  # lower half, below the cheekbones (v grows downwards)
            exponent = 2 / p.jaw_squareness
            u, v = math.copysign(abs(c) ** exponent, c), s ** exponent
            u *= 1 - (1 - p.jaw_width) * v * v  # narrows towards the chin
        else:
            u, v = c, s
        outline.append(box.at(u, v))
    return outline


def _draw_fringe(draw, box, p):
    """Hair over the forehead down to a (possibly slanted) hairline; bald heads have none."""
    if p.hair_style == "bald":
        return
    tilt = p.hairline_tilt / 2
    _draw_cap(draw, box, p.hair_color, 0.4 * p.hair_volume * box.w,
              p.hairline_v - tilt, p.hairline_v + tilt)


def _draw_eyes(draw, box, p):
    """Two eyes: white, coloured iris, black pupil, and a heavier upper lid line."""
    rx = p.eye_width * box.w
    ry = rx * p.eye_openness
    iris_r = min(0.55 * rx, 0.95 * ry)
    line = box.line_width(0.012)
    for side in (-1, 1):
        centre = box.at(side * p.eye_spacing, p.eye_v)
        eye = _ellipse_box(centre, rx, ry)
        draw.ellipse(eye, fill=SCLERA)
        iris_centre = (centre[0] + p.gaze * (rx - iris_r) * 0.6, centre[1])
        draw.ellipse(_ellipse_box(iris_centre, iris_r, iris_r), fill=p.iris_color)
        draw.ellipse(_ellipse_box(iris_centre, 0.5 * iris_r, 0.5 * iris_r), fill=EYE_LINE)
        draw.ellipse(eye, outline=EYE_LINE, width=line)
        draw.arc(eye, 180, 360, fill=EYE_LINE, width=2 * line)


def _draw_brows(draw, box, p):
    """Two eyebrows in a darker hair colour, tilted and arched."""
    color = _shade(p.hair_color, 0.75)
    inner, outer = p.eye_spacing - 1.1 * p.eye_width, p.eye_spacing + 1.2 * p.eye_width
    base_v = p.eye_v - p.brow_gap
    for side in (-1, 1):
        points = [box.at(side * inner, base_v),
                  box.at(side * (inner + outer) / 2, base_v - p.brow_arch - p.brow_tilt / 2),
                  box.at(side * outer, base_v - p.brow_tilt)]
        draw.line(points, fill=color, width=box.line_width(p.brow_thickness), joint="curve")


def _draw_nose(draw, box, p):
    """A shaded nose tip with the nostril line under it, and a faint bridge line."""
    shadow = _shade(p.skin, 0.88)
    rx = p.nose_width * box.w
    tip = _ellipse_box(box.at(0, p.nose_v), rx, 0.6 * rx)
    draw.ellipse(tip, fill=shadow)
    bridge = [box.at(0.5 * p.nose_width, p.nose_v - p.nose_length),
              box.at(0.6 * p.nose_width, p.nose_v - 0.25 * p.nose_length)]
    draw.line(bridge, fill=shadow, width=box.line_width(0.02))
    draw.arc(tip, 20, 160, fill=_outline_color(p), width=box.line_width(0.015))


def _draw_mouth(draw, box, p):
    """A smiling or frowning mouth: a lip line when closed, lips round teeth when open."""
    upper = _mouth_curve(box, p, 0)
    lip_width = box.line_width(0.025)
    if p.mouth_open == 0:
        draw.line(upper, fill=p.lip_color, width=lip_width, joint="curve")
        return
    lower = _mouth_curve(box, p, p.mouth_open)[::-1]
    draw.polygon(upper + lower, fill=MOUTH_INSIDE)
    draw.polygon(upper + _mouth_curve(box, p, 0.35 * p.mouth_open)[::-1], fill=TEETH)
    draw.line(upper + lower + upper[:1], fill=p.lip_color, width=lip_width, joint="curve")


def _mouth_curve(box, p, depth, points=17):
    """Corner-to-corner points `depth` (half-height units) below the upper lip at the centre, a
    parabola whose corners rise by `smile`; every such curve shares the mouth's corners."""
    return [box.at(x * p.mouth_width, p.mouth_v - p.smile * x * x + depth * (1 - x * x))
            for x in np.linspace(-1, 1, points)]


# ----------------------------------------------------------------------------------------------
# The side view: the same face in profile, facing right, for the pix2pix stage
# ----------------------------------------------------------------------------------------------

# In profile, u runs from the back of the head (negative) to the face (positive). The face's
# front plane (forehead, lips, chin) is at this u; the nose sticks out beyond it.
PROFILE_FRONT = 0.88
# The skull: an ellipse about this centre, with these radii, in face units.
SKULL_CENTRE, SKULL_RADII = (-0.15, -0.12), (1.0, 0.88)


def _draw_side(p, canvas):
    """The side view on a `canvas`-pixel square, painted back to front: the face of the front
    view seen from its left, so the nose points to the right of the image. The background,
    framing and every colour and feature size come from the same params."""
    image = _background(p, canvas)
    draw = ImageDraw.Draw(image)
    box = _FaceBox(p.centre_x * canvas, p.centre_y * canvas,
                   p.half_width * canvas, p.half_height * canvas)
    for part in (_draw_side_back_hair, _draw_side_shoulders, _draw_side_head, _draw_side_hair,
                 _draw_side_ear, _draw_side_eye, _draw_side_brow, _draw_side_nose,
                 _draw_side_mouth):
        part(draw, box, p)
    return image


def _skull_points(box, pad, start, end, points=48):
    """Canvas points along the skull ellipse grown by `pad` face units, from angle `start` to
    `end` (radians; 0 points forward, pi/2 down)."""
    (cu, cv), (ru, rv) = SKULL_CENTRE, SKULL_RADII
    return [box.at(cu + (ru + pad) * math.cos(t), cv + (rv + pad) * math.sin(t))
            for t in np.linspace(start, end, points)]


def _skull_angle(v, pad, back=True):
    """The angle at which the grown skull ellipse reaches height `v`, on its back or front."""
    sine = max(-1.0, min(1.0, (v - SKULL_CENTRE[1]) / (SKULL_RADII[1] + pad)))
    return math.pi - math.asin(sine) if back else 2 * math.pi + math.asin(sine)


def _draw_side_back_hair(draw, box, p):
    """The hair mass behind the head, as in the front view: a cap down to the back of the
    skull, long hair hanging down the back, or the afro all round."""
    if p.hair_style not in _BACK_HAIR:
        return
    reach, lowest_v, hangs = _BACK_HAIR[p.hair_style]
    pad = reach * p.hair_volume
    top_front = box.at(0.3, SKULL_CENTRE[1])
    draw.polygon(_skull_points(box, pad, _skull_angle(lowest_v + 0.3, pad), 1.75 * math.pi)
                 + [top_front], fill=p.hair_color)
    if hangs:
        back = SKULL_CENTRE[0] - SKULL_RADII[0] - pad
        draw.rounded_rectangle([box.cx + back * box.w, box.cy - 0.2 * box.h,
                                box.cx - 0.3 * box.w, box.cy + (1 + p.hair_length) * box.h],
                               radius=0.4 * box.w, fill=p.hair_color)


def _draw_side_shoulders(draw, box, p):
    """The shirt seen from the side (narrower than from the front) and the neck, leaning
    forward a little, in the chin's shadow."""
    draw.ellipse([box.cx - 1.4 * box.w, box.cy + 0.95 * box.h,
                  box.cx + 1.2 * box.w, box.cy + 3.2 * box.h], fill=p.shirt_color)
    draw.polygon([box.at(0.35, 0.7), box.at(0.45, 2.0), box.at(-0.5, 2.0), box.at(-0.6, 0.3)],
                 fill=_shade(p.skin, 0.85))


def _profile(p):
    """The face's front contour in face units, forehead to chin, then back along the jaw: the
    forehead, brow ridge, nose (its length and width set how far and how low it sticks out),
    lips (parted by `mouth_open`) and chin of the front view's params."""
    front = PROFILE_FRONT
    tip = 0.1 + 0.6 * p.nose_length
    nose_base = p.nose_v + 0.07 + 0.3 * p.nose_width
    brow_v = p.eye_v - p.brow_gap
    # A square jaw turns at a sharper, lower angle; a narrow one further forward.
    jaw = (-0.35 + 0.4 * (1 - p.jaw_width), 0.5 + 0.1 * (p.jaw_squareness - 1.8))
    return [(0.45, -0.85), (0.78, -0.6), (front, brow_v), (front - 0.05, p.eye_v + 0.03),
            (front + tip, p.nose_v), (front + 0.35 * tip, nose_base), (front - 0.02, nose_base),
            (front + 0.04, p.mouth_v - 0.05), (front + 0.01, p.mouth_v),
            (front - 0.03, p.mouth_v + 0.02), (front - 0.03, p.mouth_v + p.mouth_open),
            (front + 0.02, p.mouth_v + p.mouth_open + 0.07),
            (front - 0.06, p.mouth_v + p.mouth_open + 0.17), (front - 0.02, 0.88),
            (front - 0.2, 1.0), (0.3, 0.92), jaw, (-0.3, 0.0)]


def _draw_side_head(draw, box, p):
    """The skull and the face in skin, outlined along the back of the head and the face."""
    draw.ellipse(_ellipse_box(box.at(*SKULL_CENTRE), SKULL_RADII[0] * box.w,
                              SKULL_RADII[1] * box.h), fill=p.skin)
    contour = [box.at(u, v) for u, v in _profile(p)]
    draw.polygon(contour, fill=p.skin)
    line = box.line_width(0.015)
    draw.line(contour[:-1], fill=_outline_color(p), width=line, joint="curve")
    draw.line(_skull_points(box, 0, 0.65 * math.pi, 1.65 * math.pi), fill=_outline_color(p),
              width=line, joint="curve")


def _draw_side_hair(draw, box, p):
    """The hair on the scalp: over the top from the forehead's hairline, a sideburn in front of
    the ear, down to the nape; bald heads have none."""
    if p.hair_style == "bald":
        return
    pad = 0.4 * p.hair_volume
    hairline = [box.at(0.6, p.hairline_v + 0.05), box.at(0.05, p.eye_v - 0.05),
                box.at(0.02, p.eye_v + 0.2), box.at(-0.25, p.eye_v + 0.05),
                box.at(-0.8, 0.15)]
    draw.polygon(_skull_points(box, pad, _skull_angle(0.15, pad),
                               _skull_angle(p.hairline_v, pad, back=False)) + hairline,
                 fill=p.hair_color)


def _draw_side_ear(draw, box, p):
    """The one ear that shows, between eye and nose height, with the curve of its rim."""
    centre = box.at(-0.22, (p.eye_v + p.nose_v) / 2)
    ear = _ellipse_box(centre, 0.14 * p.ear_size * box.w, 0.24 * p.ear_size * box.h)
    draw.ellipse(ear, fill=p.skin, outline=_outline_color(p), width=box.line_width(0.012))
    inner = _ellipse_box(centre, 0.07 * p.ear_size * box.w, 0.14 * p.ear_size * box.h)
    draw.arc(inner, 100, 300, fill=_outline_color(p), width=box.line_width(0.012))


def _draw_side_eye(draw, box, p):
    """The eye in profile: a wedge of white opening forwards, the iris at its front, a heavy
    upper lid line."""
    length = 0.9 * p.eye_width
    front = PROFILE_FRONT - 0.07
    height = p.eye_openness * p.eye_width
    back, upper, lower = (box.at(front - length, p.eye_v), box.at(front, p.eye_v - 0.6 * height),
                          box.at(front - 0.01, p.eye_v + 0.5 * height))
    draw.polygon([back, upper, lower], fill=SCLERA)
    iris = box.at(front - 0.25 * length, p.eye_v)
    iris_h = 0.45 * height * box.h
    draw.ellipse(_ellipse_box(iris, 0.35 * iris_h, iris_h), fill=p.iris_color)
    draw.ellipse(_ellipse_box(iris, 0.15 * iris_h, 0.5 * iris_h), fill=EYE_LINE)
    line = box.line_width(0.012)
    draw.line([back, lower], fill=EYE_LINE, width=line)
    draw.line([back, upper], fill=EYE_LINE, width=2 * line)


def _draw_side_brow(draw, box, p):
    """The eyebrow over the eye, its outer end (now at the back) raised by the tilt."""
    base_v = p.eye_v - p.brow_gap
    front = PROFILE_FRONT - 0.04
    points = [box.at(front, base_v),
              box.at(front - 0.15, base_v - p.brow_arch - p.brow_tilt / 2),
              box.at(front - 0.3, base_v - p.brow_tilt)]
    draw.line(points, fill=_shade(p.hair_color, 0.75), width=box.line_width(p.brow_thickness),
              joint="curve")


def _draw_side_nose(draw, box, p):
    """A shaded nostril under the nose tip."""
    tip = 0.1 + 0.6 * p.nose_length
    nostril = box.at(PROFILE_FRONT + 0.3 * tip, p.nose_v + 0.04 + 0.15 * p.nose_width)
    rx = 0.5 * p.nose_width * box.w
    draw.ellipse(_ellipse_box(nostril, rx, 0.5 * rx), fill=_shade(p.skin, 0.7))


def _draw_side_mouth(draw, box, p):
    """The lips at the front, and the mouth line back to the corner, raised by the smile; an
    open mouth shows dark between the lips."""
    front = PROFILE_FRONT
    corner = box.at(front - 0.45 * p.mouth_width, p.mouth_v - 0.8 * p.smile)
    lip = (0.07 * box.w, 0.035 * box.h)
    draw.ellipse(_ellipse_box(box.at(front, p.mouth_v - 0.03), *lip), fill=p.lip_color)
    draw.ellipse(_ellipse_box(box.at(front - 0.01, p.mouth_v + p.mouth_open + 0.04), *lip),
                 fill=p.lip_color)
    if p.mouth_open:
        draw.polygon([box.at(front - 0.02, p.mouth_v + 0.01), corner,
                      box.at(front - 0.02, p.mouth_v + p.mouth_open)], fill=MOUTH_INSIDE)
    draw.line([box.at(front - 0.02, p.mouth_v + 0.01), corner], fill=p.lip_color,
              width=box.line_width(0.025))


VIEW_DRAWERS = {"front": _draw_front, "side": _draw_side}


def _face_path(folder, index):
    """Where face `index` of the set is stored."""
    return os.path.join(folder, "face_%05d.png" % index)


def _spec(size, seed, view, **more):
    """What a set or file was drawn from. The view is named only when it is not the front, so
    front sets drawn before the side view existed stay current."""
    spec = dict(more, size=size, seed=seed, version=DRAWING_VERSION)
    if view != "front":
        spec["view"] = view
    return spec


def _png_tag(index, size, seed, view="front"):
    """The text stored in each PNG: what it was drawn from and by which drawing version."""
    return json.dumps(_spec(size, seed, view, index=index), sort_keys=True)


def _is_current(folder, index, size, seed, view="front"):
    """True if the file for `index` exists, is readable and holds exactly the wanted image."""
    try:
        with Image.open(_face_path(folder, index)) as image:
            return image.text.get(PNG_TAG_KEY) == _png_tag(index, size, seed, view)
    except (OSError, SyntaxError):  # missing, truncated or not a PNG: draw it again
        return False


def _save_face(folder, index, size, seed, view="front"):
    """Draw face `index` of the set from (seed, index) alone and write it atomically."""
    params = random_face_params(np.random.default_rng([seed, index]))
    info = PngInfo()
    info.add_text(PNG_TAG_KEY, _png_tag(index, size, seed, view))
    with atomic_path(_face_path(folder, index)) as tmp:
        draw_face(params, size, view).save(tmp, format="PNG", pnginfo=info)


def _draw_faces(folder, indices, size, seed, view="front"):
    """Draw and save the given faces, over all cores when there are enough of them."""
    save = functools.partial(_save_face, folder, size=size, seed=seed, view=view)
    workers = os.cpu_count() or 1
    parallel = workers > 1 and len(indices) >= PARALLEL_MIN_IMAGES
    progress = Progress("demo faces", len(indices), "faces")
    with multiprocessing.Pool(workers) if parallel else nullcontext() as pool:
        saved = pool.imap_unordered(save, indices, chunksize=32) if parallel else map(save, indices)
        for _ in saved:
            progress.advance()


def _remove_surplus(folder, n_images):
    """Delete face files numbered n_images or above, left by an earlier, larger set."""
    for name in os.listdir(folder):
        match = FACE_NAME.match(name)
        if match and int(match.group(1)) >= n_images:
            os.remove(os.path.join(folder, name))


def make_demo_dataset(folder, n_images=4000, size=64, seed=0, view="front"):
    """Draw the demo dataset into `folder` once and return `folder` (demo data beside Part 5):
    `face_00000.png`, ..., image i depending only on (seed, i), seen from `view`; a later call
    redraws only missing, unreadable or differently drawn files."""
    folder = os.fspath(folder)
    spec = _spec(size, seed, view, n_images=n_images)
    marker = os.path.join(folder, MARKER_NAME)
    if read_json(marker) == spec:
        return folder
    os.makedirs(folder, exist_ok=True)
    _remove_surplus(folder, n_images)
    missing = [i for i in range(n_images) if not _is_current(folder, i, size, seed, view)]
    _draw_faces(folder, missing, size, seed, view)
    with atomic_path(marker) as tmp, open(tmp, "w") as f:
        json.dump(spec, f, sort_keys=True)
    return folder


def make_demo_pairs(folder, n_pairs=3000, size=64, seed=0):
    """Draw the paired demo set for the pix2pix stage into `folder` once and return `folder`:
    `front/face_i.png`, face i of the demo set of the same seed, and `side/face_i.png`, the same
    face in profile; each view as make_demo_dataset draws it."""
    for view in ("front", "side"):
        make_demo_dataset(os.path.join(folder, view), n_pairs, size, seed, view)
    return os.fspath(folder)


def main(argv=None):
    """Command line: draw the demo dataset (demo data beside Part 5)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="demo_faces",
                        help="folder to draw the PNG files into (created if needed)")
    parser.add_argument("--n_images", type=int, default=4000, help="number of faces to draw")
    parser.add_argument("--size", type=int, default=64, help="side of each square image in pixels")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed; the same seed always gives the same images")
    parser.add_argument("--pairs", action="store_true",
                        help="draw each face from the front into OUT/front and in profile into "
                             "OUT/side, the paired set of the pix2pix stage")
    args = parser.parse_args(argv)
    make = make_demo_pairs if args.pairs else make_demo_dataset
    print(make(args.out, args.n_images, args.size, args.seed))


if __name__ == "__main__":
    main()
