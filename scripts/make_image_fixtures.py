#!/usr/bin/env python3
"""Writes tests/fixtures/image/: test images (real photos from scikit-image's bundled data and
synthetic edge cases), decode references from PIL, PIL resize references, and the outputs of
transformers' Idefics3/SmolVLM image processor (Pillow backend) for SmolVLM-256M's real
preprocessor_config.json with image splitting on and off, plus full tensors for a reduced
config. Run with /work/venv/bin/python (transformers + Pillow + scikit-image + numpy).

The C tests (tests/test_image.c, tests/test_processor.c) read manifest.json.xz and never
need Python."""
import hashlib
import io
import json
import lzma
import os
import struct
import sys
import types
import zlib

import numpy as np
import skimage.data
from PIL import Image, ImageOps

from transformers import AutoImageProcessor
from transformers.image_transforms import convert_to_rgb
from transformers.models.idefics3.processing_idefics3 import Idefics3Processor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "image")
MODEL = os.environ.get("SMOLVLM_DIR", "/work/shared/models/HuggingFaceTB--SmolVLM-256M-Instruct")
SMALL = os.path.join(OUT, "smolvlm-small")
FULL = os.path.join(OUT, "smolvlm-256m")   # copies of the real model's processor configs
QWEN_MODEL = os.environ.get("QWEN_DIR", "/work/shared/models/Qwen--Qwen2.5-VL-3B-Instruct")
QWEN = os.path.join(OUT, "qwen2.5-vl")
LLAVA_MODEL = os.environ.get("LLAVA_DIR", "/work/shared/models/llava-hf--llava-1.5-7b-hf")
LLAVA = os.path.join(OUT, "llava-1.5")


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


# ---- hand-written PNGs for what PIL cannot save (16-bit colour, Adam7 interlace) ---------

def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bytes(arr, color_type, depth, interlace=False, extra=b""):
    """arr: (h, w, c) uint8 or uint16 array; rows written with filter type 0."""
    h, w = arr.shape[:2]
    be = arr.astype(">u2") if depth == 16 else arr.astype(np.uint8)

    def rows(a):
        return b"".join(b"\x00" + a[y].tobytes() for y in range(a.shape[0]))

    if not interlace:
        raw = rows(be)
    else:
        raw = b""
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                               (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            sub = be[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += rows(sub)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra +
            png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def bmp565(arr):
    h, w = arr.shape[:2]
    r, g, b = (arr[..., i].astype(np.uint16) for i in range(3))
    px = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)
    stride = (w * 2 + 3) & ~3
    data = b"".join(px[y].astype("<u2").tobytes().ljust(stride, b"\0") for y in range(h - 1, -1, -1))
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 3, len(data), 2835, 2835, 0, 0)
    masks = struct.pack("<III", 0xF800, 0x7E0, 0x1F)
    off = 14 + 40 + 12
    return b"BM" + struct.pack("<IHHI", off + len(data), 0, 0, off) + info + masks + data


def bmp_rle(idx, palette, rle4):
    """8-bit (RLE8) or 4-bit (RLE4) BMP: encoded runs, absolute runs (word-aligned), one delta,
    end-of-line and end-of-bitmap markers, bottom-up rows."""
    h, w = idx.shape
    out = bytearray()
    for y in range(h - 1, -1, -1):
        row = [int(v) for v in idx[y]]
        x = 0
        if y == h // 2 and w > 4:                     # delta: skip 2 pixels (they become 0)
            out += bytes([0, 2, 2, 0])
            x = 2
        while x < w:
            run = 1
            while x + run < w and run < 255 and row[x + run] == row[x]:
                run += 1
            if run >= 3 or w - x < 3:
                v = row[x] if not rle4 else (row[x] << 4) | row[x]
                out += bytes([run, v])
                x += run
            else:
                n = min(w - x, 6)
                seg = row[x:x + n]
                if rle4:
                    packed = bytes((seg[i] << 4) | (seg[i + 1] if i + 1 < n else 0) for i in range(0, n, 2))
                else:
                    packed = bytes(seg)
                out += bytes([0, n]) + packed
                if len(packed) % 2:
                    out += b"\0"
                x += n
        out += bytes([0, 0]) if y else bytes([0, 1])
    pal = b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 4 if rle4 else 8, 2 if rle4 else 1, len(out), 0, 0,
                       len(palette), 0)
    off = 14 + 40 + len(pal)
    return b"BM" + struct.pack("<IHHI", off + len(out), 0, 0, off) + info + pal + bytes(out)


# ---- the images -----------------------------------------------------------------------------

def gradient(w, h, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 7) % 256], -1)
    a = a + rng.integers(-20, 21, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)


def save(im, name, **kw):
    b = io.BytesIO()
    fmt = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP"}[name.rsplit(".", 1)[1]]
    im.save(b, fmt, **kw)
    return name, b.getvalue()


def exif_with(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e


def make_images():
    out = []
    astro = Image.fromarray(skimage.data.astronaut())
    out.append(save(astro, "astronaut.jpg", quality=90))
    out.append(save(Image.fromarray(skimage.data.coffee()), "coffee.jpg", quality=85, progressive=True))
    out.append(save(Image.fromarray(skimage.data.chelsea()), "chelsea.png"))
    g = gradient(37, 23)
    out.append(save(Image.fromarray(g), "odd_37x23.jpg", quality=92))
    out.append(save(Image.fromarray(g), "odd_37x23.png"))
    out.append(save(Image.fromarray(gradient(1, 1)), "px_1x1.png"))
    out.append(save(Image.fromarray(gradient(1, 1)), "px_1x1.jpg"))
    out.append(save(Image.fromarray(gradient(1, 4000)), "tall_1x4000.png"))
    out.append(save(Image.fromarray(gradient(4000, 1)), "wide_4000x1.png"))
    out.append(save(Image.fromarray(gradient(61, 45)).convert("L"), "grey.jpg", quality=90))
    out.append(save(Image.fromarray(gradient(61, 45)).convert("L"), "grey.png"))
    pal = Image.fromarray(gradient(50, 40)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    out.append(save(pal, "palette4.png", bits=4))
    palt = Image.fromarray(gradient(50, 40)).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    out.append(save(palt, "palette_trns.png", transparency=bytes(range(0, 256, 4))[:64]))
    rgba = np.dstack([gradient(45, 33), (np.arange(45 * 33).reshape(33, 45) * 7 % 256).astype(np.uint8)])
    out.append(save(Image.fromarray(rgba, "RGBA"), "rgba.png"))
    la = Image.fromarray(rgba, "RGBA").convert("LA")
    out.append(save(la, "la.png"))
    out.append(save(Image.fromarray(gradient(30, 20)), "rgb_trns.png", transparency=(0, 0, 0)))
    g16 = (gradient(40, 30).astype(np.uint16) * 257 + np.arange(40)[None, :, None].astype(np.uint16))
    out.append(("rgb16.png", png_bytes(g16, 2, 16)))
    rgba16 = np.dstack([g16, np.full((30, 40, 1), 40000, np.uint16)])
    out.append(("rgba16.png", png_bytes(rgba16, 6, 16)))
    grey16 = (np.arange(40 * 30).reshape(30, 40, 1) * 3).astype(np.uint16)
    out.append(("grey16.png", png_bytes(grey16, 0, 16)))
    out.append(("interlaced.png", png_bytes(gradient(43, 29), 2, 8, interlace=True)))
    # Palette of 2 entries, indices past it (PIL: black).
    idx = np.array([[0, 1, 5, 200] * 4] * 6, np.uint8)[..., None]
    out.append(("palette_oob.png", png_bytes(idx, 3, 8, extra=png_chunk(b"PLTE", bytes([10, 20, 30, 40, 50, 60])))))
    out.append(("interlaced_rgba.png", png_bytes(rgba, 6, 8, interlace=True)))
    cmyk = Image.fromarray(gradient(48, 32)).convert("CMYK")
    out.append(save(cmyk, "cmyk.jpg", quality=90))
    out.append(save(Image.fromarray(gradient(120, 80)), "progressive.jpg", quality=88, progressive=True))
    base = Image.fromarray(gradient(24, 16, seed=3))
    for o in range(1, 9):
        out.append(save(base, f"exif_{o}.jpg", quality=95, exif=exif_with(o)))
    out.append(save(base, "exif_6.png", exif=exif_with(6)))
    out.append(save(base, "exif_8.webp", lossless=True, exif=exif_with(8)))
    frames = [Image.fromarray(gradient(40, 30, seed=s)).convert("P", palette=Image.Palette.ADAPTIVE)
              for s in range(3)]
    out.append(save(frames[0], "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0))
    gt = Image.fromarray(gradient(33, 21)).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    out.append(save(gt, "trns.gif", transparency=5))
    out.append(save(Image.fromarray(gradient(64, 48)), "lossy.webp", quality=80))
    out.append(save(Image.fromarray(rgba, "RGBA"), "lossless_rgba.webp", lossless=True))
    out.append(save(Image.fromarray(rgba, "RGBA"), "lossy_rgba.webp", quality=75))
    wf = [Image.fromarray(gradient(36, 28, seed=s)) for s in range(3)]
    out.append(save(wf[0], "anim.webp", save_all=True, append_images=wf[1:], duration=100, lossless=True))
    out.append(save(Image.fromarray(gradient(35, 19)), "rgb24.bmp"))
    out.append(save(Image.fromarray(gradient(35, 19)).convert("P", palette=Image.Palette.ADAPTIVE), "pal8.bmp"))
    out.append(save(Image.fromarray(gradient(35, 19)).convert("1"), "mono.bmp"))
    out.append(("rgb565.bmp", bmp565(gradient(21, 13))))
    rng = np.random.default_rng(7)
    blocks = (np.arange(23 * 17).reshape(17, 23) // 5 % 7).astype(np.uint8)
    blocks[3, 4:9] = rng.integers(0, 7, 5)
    pal7 = [(int(a), int(b), int(c)) for a, b, c in rng.integers(0, 256, (7, 3))]
    out.append(("rle8.bmp", bmp_rle(blocks, pal7, False)))
    out.append(("rle4.bmp", bmp_rle(blocks, pal7, True)))
    return out


# ---- bad inputs -----------------------------------------------------------------------------

def bombs():
    ihdr = struct.pack(">IIBBBBB", 65535, 65535, 8, 2, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
           png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))
    gif = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0) + b",\0\0\0\0" + \
        struct.pack("<HH", 65535, 65535) + b"\0\x02\x02\x4c\x01\0;"
    # A real 16 x 16 JPEG whose SOF0 is patched to declare 65500 x 65500.
    b = io.BytesIO()
    Image.fromarray(gradient(16, 16)).save(b, "JPEG")
    jpg = bytearray(b.getvalue())
    sof = jpg.index(b"\xff\xc0")
    jpg[sof + 5:sof + 9] = struct.pack(">HH", 65500, 65500)
    jpg = bytes(jpg)
    bmp_info = struct.pack("<IiiHHIIiiII", 40, 60000, 60000, 1, 24, 0, 0, 0, 0, 0, 0)
    bmp = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + bmp_info
    # A real lossless WebP whose VP8L header is patched to 16384 x 16384 (14-bit fields).
    b = io.BytesIO()
    Image.fromarray(gradient(8, 8)).save(b, "WEBP", lossless=True)
    webp = bytearray(b.getvalue())
    v = webp.index(b"VP8L") + 8
    assert webp[v] == 0x2F
    bits = int.from_bytes(webp[v + 1:v + 5], "little")
    bits = (bits & ~0xFFFFFFF) | 16383 | (16383 << 14)
    webp[v + 1:v + 5] = bits.to_bytes(4, "little")
    webp = bytes(webp)
    return [("bomb.png", png), ("bomb.gif", gif), ("bomb.jpg", jpg), ("bomb.bmp", bmp), ("bomb.webp", webp)]


# ---- references -----------------------------------------------------------------------------

def decode_refs(name, data):
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im)
    comp = convert_to_rgb(im, return_numpy=True)           # processor path: alpha onto white
    drop = np.array(im.convert("RGB"))                      # load_image path: alpha dropped
    return {"name": name, "w": int(comp.shape[1]), "h": int(comp.shape[0]),
            "rgb_sha256": sha(comp.tobytes()), "rgb_drop_sha256": sha(drop.tobytes())}, comp


def lcg_image(seed, w, h):
    """Pseudo-random RGB the C test regenerates: x = x*1664525 + 1013904223 (mod 2^32), byte =
    x >> 24, smoothed so that resizing has structure to keep."""
    n = w * h * 3
    out = np.empty(n, np.uint8)
    x = seed & 0xFFFFFFFF
    for i in range(n):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = x >> 24
    return out.reshape(h, w, 3)


def resize_refs():
    rng = np.random.default_rng(1234)
    cases = []
    for i in range(40):
        w, h = int(rng.integers(1, 90)), int(rng.integers(1, 90))
        ow, oh = int(rng.integers(1, 130)), int(rng.integers(1, 130))
        if i % 5 == 0:
            ow, oh = max(1, w // 3), max(1, h // 2)          # strong downscale
        f = [0, 1, 2, 3, 4, 5][i % 6]
        img = Image.fromarray(lcg_image(i + 1, w, h))
        r = np.array(img.resize((ow, oh), resample=f))
        cases.append({"seed": i + 1, "w": w, "h": h, "ow": ow, "oh": oh, "filter": f,
                      "sha256": sha(r.tobytes())})
    return cases


def processor_refs(proc, name, data, splitting, blob):
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    r = proc(images=[[im]], do_image_splitting=splitting, return_row_col_info=True, return_tensors="np")
    pv = r["pixel_values"][0].astype(np.float32)
    mask = r["pixel_attention_mask"][0]
    rows, cols = int(r["rows"][0][0]), int(r["cols"][0][0])
    ns = types.SimpleNamespace(fake_image_token="<fake_token_around_image>", image_token="<image>",
                               global_image_tag="<global-img>", image_seq_len=proc_seq_len)
    prompt = Idefics3Processor.replace_image_token(ns, {"rows": [[rows]], "cols": [[cols]]}, 0)
    entry = {"name": name, "splitting": splitting, "n_tiles": int(pv.shape[0]), "h": int(pv.shape[2]),
             "w": int(pv.shape[3]), "rows": rows, "cols": cols, "prompt": prompt,
             "n_image_tokens": prompt.count("<image>"),
             "tile_sha256": [sha(np.ascontiguousarray(t).tobytes()) for t in pv],
             "mask_valid": [[int(m.any(axis=1).sum()), int(m.any(axis=0).sum())] for m in mask]}
    if blob is not None:
        entry["offset"] = len(blob)
        entry["count"] = int(pv.size)
        blob += np.ascontiguousarray(pv).astype("<f4").tobytes()
    return entry


proc_seq_len = 64


def main():
    global proc_seq_len
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(SMALL, exist_ok=True)
    os.makedirs(FULL, exist_ok=True)
    for name in ("preprocessor_config.json", "processor_config.json"):
        with open(os.path.join(MODEL, name), "rb") as src, open(os.path.join(FULL, name), "wb") as dst:
            dst.write(src.read())
    images = make_images()
    for name, data in images + bombs():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    manifest = {"decode": [], "resize": resize_refs(), "processor": [], "processor_small": []}
    for name, data in images:
        ref, _ = decode_refs(name, data)
        manifest["decode"].append(ref)
    print("decode refs:", len(manifest["decode"]), file=sys.stderr)

    proc_seq_len = json.load(open(os.path.join(MODEL, "processor_config.json")))["image_seq_len"]
    proc = AutoImageProcessor.from_pretrained(FULL)
    for name, data in images:
        for splitting in (True, False):
            manifest["processor"].append(processor_refs(proc, name, data, splitting, None))
    print("processor refs:", len(manifest["processor"]), file=sys.stderr)

    # Reduced config (same family, small tiles) with full tensors, compared element-wise.
    cfg = json.load(open(os.path.join(MODEL, "preprocessor_config.json")))
    cfg["size"] = {"longest_edge": 96}
    cfg["max_image_size"] = {"longest_edge": 32}
    json.dump(cfg, open(os.path.join(SMALL, "preprocessor_config.json"), "w"), indent=2)
    json.dump({"image_seq_len": 4, "processor_class": "Idefics3Processor"},
              open(os.path.join(SMALL, "processor_config.json"), "w"), indent=2)
    proc_seq_len = 4
    small = AutoImageProcessor.from_pretrained(SMALL)
    blob = bytearray()
    for name, data in images:
        for splitting in (True, False):
            manifest["processor_small"].append(processor_refs(small, name, data, splitting, blob))
    # Qwen2-VL / Qwen2.5-VL image processor with the real config: hash of the whole tensor.
    os.makedirs(QWEN, exist_ok=True)
    with open(os.path.join(QWEN_MODEL, "preprocessor_config.json"), "rb") as src, \
            open(os.path.join(QWEN, "preprocessor_config.json"), "wb") as dst:
        dst.write(src.read())
    qproc = AutoImageProcessor.from_pretrained(QWEN)
    manifest["qwen2vl"] = []
    for name, data in images:
        im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        try:
            r = qproc(images=[im], return_tensors="np")
        except ValueError:
            manifest["qwen2vl"].append({"name": name, "error": True})
            continue
        pv = r["pixel_values"].astype(np.float32)
        thw = [int(v) for v in r["image_grid_thw"][0]]
        manifest["qwen2vl"].append({"name": name, "error": False, "shape": list(pv.shape), "grid_thw": thw,
                                    "n_image_tokens": thw[0] * thw[1] * thw[2] // qproc.merge_size ** 2,
                                    "sha256": sha(np.ascontiguousarray(pv).tobytes())})
    # CLIPImageProcessor with LLaVA 1.5's configs; token count as LlavaProcessor computes it.
    os.makedirs(LLAVA, exist_ok=True)
    for fn in ("preprocessor_config.json", "processor_config.json"):
        with open(os.path.join(LLAVA_MODEL, fn), "rb") as src, open(os.path.join(LLAVA, fn), "wb") as dst:
            dst.write(src.read())
    lproc = AutoImageProcessor.from_pretrained(LLAVA)
    pcfg = json.load(open(os.path.join(LLAVA, "processor_config.json")))
    manifest["clip"] = []
    for name, data in images:
        im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        pv = lproc(images=[im], return_tensors="np")["pixel_values"].astype(np.float32)
        h, w = pv.shape[-2:]
        n = (h // pcfg["patch_size"]) * (w // pcfg["patch_size"]) + pcfg.get("num_additional_image_tokens", 0)
        if pcfg.get("vision_feature_select_strategy", "default") == "default":
            n -= 1
        manifest["clip"].append({"name": name, "shape": list(pv.shape), "n_image_tokens": n,
                                 "sha256": sha(np.ascontiguousarray(pv).tobytes())})
    # Gemma3ImageProcessor: google/gemma-3-*-it's settings (896 x 896, bilinear, mean/std 0.5,
    # 256 soft tokens), pan-and-scan off and on; prompt from Gemma3Processor.replace_image_token.
    from transformers.models.gemma3.processing_gemma3 import Gemma3Processor
    seq = "\n\n<start_of_image>" + "<image_soft_token>" * 256 + "<end_of_image>\n\n"
    gns = types.SimpleNamespace(full_image_sequence=seq)
    manifest["gemma3"] = []
    for sub, pas in (("gemma3", None), ("gemma3-pas", True)):
        d = os.path.join(OUT, sub)
        os.makedirs(d, exist_ok=True)
        cfg = {"do_convert_rgb": None, "do_normalize": True, "do_pan_and_scan": pas, "do_rescale": True,
               "do_resize": True, "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "Gemma3ImageProcessor",
               "image_seq_length": 256, "image_std": [0.5, 0.5, 0.5], "pan_and_scan_max_num_crops": None,
               "pan_and_scan_min_crop_size": None, "pan_and_scan_min_ratio_to_activate": None,
               "processor_class": "Gemma3Processor", "resample": 2, "rescale_factor": 0.00392156862745098,
               "size": {"height": 896, "width": 896}}
        json.dump(cfg, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=2)
        gproc = AutoImageProcessor.from_pretrained(d)
        kw = dict(Gemma3Processor.images_kwargs)   # the processor fills the config's nulls
        kw["do_pan_and_scan"] = bool(pas)
        for name, data in images:
            if name.startswith("exif_") and name != "exif_6.jpg":
                continue
            im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
            r = gproc(images=[im], return_tensors="np", **kw)
            pv = r["pixel_values"].astype(np.float32)
            crops = int(r["num_crops"][0])
            prompt = Gemma3Processor.replace_image_token(gns, {"num_crops": [crops]}, 0)
            manifest["gemma3"].append({"config": sub, "name": name, "shape": list(pv.shape), "num_crops": crops,
                                       "prompt": prompt,
                                       "tile_sha256": [sha(np.ascontiguousarray(t).tobytes()) for t in pv]})
    with open(os.path.join(OUT, "small_tensors.f32.xz"), "wb") as f:
        f.write(lzma.compress(bytes(blob)))
    with open(os.path.join(OUT, "manifest.json.xz"), "wb") as f:
        f.write(lzma.compress(json.dumps(manifest, indent=1).encode()))
    print("small tensors:", len(blob), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
