#!/usr/bin/env python3
"""Decode + preprocess benchmark: `vlm preprocess --repeat N` against transformers' image
processor (Pillow backend) on the same files in the same run, for a 4000x3000 JPEG and a
512x512 PNG, with SmolVLM-256M's preprocessor_config.json. Prints ms per image and the ratio.

    /work/venv/bin/python scripts/bench_preprocess.py [--vlm build/vlm] [--model DIR] [--repeat N]

vlm's figure excludes process start-up (timed inside the tool); HF's includes Image.open +
load + exif_transpose + the processor call, the same work."""
import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import skimage.data
from PIL import Image, ImageOps
from transformers import AutoImageProcessor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_inputs(d):
    """A 4000x3000 photo-like JPEG (coffee upscaled, grain added) and astronaut as PNG."""
    rng = np.random.default_rng(0)
    big = Image.fromarray(skimage.data.coffee()).resize((4000, 3000), Image.Resampling.BICUBIC)
    a = np.asarray(big).astype(np.int16) + rng.integers(-6, 7, (3000, 4000, 3))
    jpg = os.path.join(d, "photo_4000x3000.jpg")
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(jpg, quality=90)
    png = os.path.join(d, "astronaut_512x512.png")
    Image.fromarray(skimage.data.astronaut()).save(png)
    return [jpg, png]


def bench_hf(proc, path, repeat):
    data = open(path, "rb").read()
    times = []
    for _ in range(repeat + 1):
        t = time.perf_counter()
        im = Image.open(io.BytesIO(data))
        im.load()
        im = ImageOps.exif_transpose(im)
        out = proc(images=[[im]], return_tensors="np")
        times.append((time.perf_counter() - t) * 1e3)
    assert out["pixel_values"].ndim == 5
    return times[1:]   # first run warms caches


def bench_vlm(vlm, model, path, repeat):
    r = subprocess.run([vlm, "preprocess", model, "--image", path, "--repeat", str(repeat)],
                       capture_output=True, text=True, check=True)
    m = re.search(r"decode\+preprocess: ([0-9.]+) ms/image mean, ([0-9.]+) ms min", r.stdout)
    if not m:
        sys.exit("unexpected vlm output:\n" + r.stdout + r.stderr)
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vlm", default=os.environ.get("VLM_BIN", os.path.join(ROOT, "build", "vlm")))
    ap.add_argument("--model", default=os.path.join(ROOT, "tests", "fixtures", "image", "smolvlm-256m"))
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    proc = AutoImageProcessor.from_pretrained(args.model)
    print(f"processor: {type(proc).__name__} from {args.model}; {os.cpu_count()} CPUs")
    print(f"{'image':<26}{'vlm mean':>10}{'vlm min':>10}{'HF mean':>10}{'HF min':>10}{'speed-up':>10}")
    with tempfile.TemporaryDirectory() as d:
        for path in make_inputs(d):
            v_mean, v_min = bench_vlm(args.vlm, args.model, path, args.repeat)
            hf = bench_hf(proc, path, args.repeat)
            h_mean, h_min = statistics.mean(hf), min(hf)
            print(f"{os.path.basename(path):<26}{v_mean:>9.1f} {v_min:>9.1f} {h_mean:>9.1f} {h_min:>9.1f} "
                  f"{h_mean / v_mean:>8.1f}x   (ms per image, decode + preprocess)")


if __name__ == "__main__":
    main()
