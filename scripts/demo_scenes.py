#!/usr/bin/env python3
"""Synthetic scenes for the vlm.c demo model (issue 6): coloured shapes on white, with
questions whose exact answers follow from the scene. Deterministic from (seed, index).

Usage: demo_scenes.py --seed 7 --count 5 --out DIR   (writes DIR/scene_NNN.png + DIR/scenes.json)
"""
import argparse
import json
import os
import random

from PIL import Image, ImageDraw

SIZE = 256
SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 70, 220),
    "yellow": (235, 200, 20),
}
COLOR_NAMES = tuple(COLORS)
JITTER = 20
MIN_SIDE, MAX_SIDE = 50, 90
MIN_GAP = 8          # px between boxes
MIN_DX = 20          # px between box centres, horizontally
COUNT_WORDS = {1: "One", 2: "Two", 3: "Three"}
QUESTION_TYPES = ("describe", "count", "left", "color", "exists")


def scene_rng(seed, index):
    """The random source of scene `index` of stream `seed` (independent of other scenes)."""
    return random.Random(seed * 1_000_003 + index)


def _boxes_ok(boxes):
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            ax, ay, as_ = boxes[i]
            bx, by, bs = boxes[j]
            # gap between the two boxes along each axis (negative when they overlap there)
            gx = max(bx - (ax + as_), ax - (bx + bs))
            gy = max(by - (ay + as_), ay - (by + bs))
            if max(gx, gy) < MIN_GAP:
                return False
            if abs((ax + as_ / 2) - (bx + bs / 2)) < MIN_DX:
                return False
    return True


def make_scene(rng):
    """A scene: list of dicts {shape, color, rgb, box=(x0, y0, side)} sorted left to right."""
    n = rng.randint(1, 3)
    while True:
        boxes = []
        for _ in range(n):
            s = rng.randint(MIN_SIDE, MAX_SIDE)
            boxes.append((rng.randint(0, SIZE - s), rng.randint(0, SIZE - s), s))
        if _boxes_ok(boxes):
            break
    shapes = []
    for box in boxes:
        color = rng.choice(COLOR_NAMES)
        rgb = tuple(min(255, max(0, c + rng.randint(-JITTER, JITTER))) for c in COLORS[color])
        shapes.append({"shape": rng.choice(SHAPES), "color": color, "rgb": rgb, "box": box})
    shapes.sort(key=lambda sh: sh["box"][0] + sh["box"][2] / 2)
    return shapes


def render(shapes):
    """The 256x256 RGB PIL image of a scene."""
    img = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for sh in shapes:
        x0, y0, s = sh["box"]
        x1, y1 = x0 + s - 1, y0 + s - 1
        if sh["shape"] == "square":
            d.rectangle([x0, y0, x1, y1], fill=sh["rgb"])
        elif sh["shape"] == "circle":
            d.ellipse([x0, y0, x1, y1], fill=sh["rgb"])
        else:
            d.polygon([(x0 + (s - 1) / 2, y0), (x0, y1), (x1, y1)], fill=sh["rgb"])
    return img


def _phrase(sh):
    return f"{sh['color']} {sh['shape']}"


def describe(shapes):
    parts = [f"a {_phrase(sh)}" for sh in shapes]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text[0].upper() + text[1:] + "."


def questions(shapes, rng):
    """Every applicable question of the scene as (type, question, answer); the existence type
    contributes one present and one absent colour+shape pair (balanced yes/no)."""
    out = [
        ("describe", "What is shown in the image?", describe(shapes)),
        ("count", "How many shapes are there?", COUNT_WORDS[len(shapes)] + "."),
        ("left", "Which shape is on the left?", f"The {_phrase(shapes[0])}."),
    ]
    for kind in SHAPES:
        same = [sh for sh in shapes if sh["shape"] == kind]
        if len(same) == 1:
            out.append(("color", f"What color is the {kind}?", same[0]["color"].capitalize() + "."))
    present = sorted({(sh["color"], sh["shape"]) for sh in shapes})
    absent = [(c, s) for c in COLOR_NAMES for s in SHAPES if (c, s) not in present]
    for (c, s), ans in ((rng.choice(present), "Yes."), (rng.choice(absent), "No.")):
        out.append(("exists", f"Is there a {c} {s}?", ans))
    return out


def scene(seed, index):
    """(shapes, image, questions) of scene `index` of stream `seed`."""
    rng = scene_rng(seed, index)
    shapes = make_scene(rng)
    return shapes, render(shapes), questions(shapes, rng)


def normalize_answer(text):
    """Exact-match normal form: case-folded, surrounding space and one final period removed."""
    t = text.strip().lower()
    if t.endswith("."):
        t = t[:-1]
    return t.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    records = []
    for i in range(a.count):
        shapes, img, qs = scene(a.seed, i)
        name = f"scene_{i:03d}.png"
        img.save(os.path.join(a.out, name), optimize=True)
        records.append({
            "image": name, "seed": a.seed, "index": i,
            "shapes": [{"shape": s["shape"], "color": s["color"], "rgb": list(s["rgb"]),
                        "box": list(s["box"])} for s in shapes],
            "questions": [{"type": t, "question": q, "answer": ans} for t, q, ans in qs],
        })
    with open(os.path.join(a.out, "scenes.json"), "w") as f:
        json.dump(records, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
