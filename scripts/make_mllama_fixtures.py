#!/usr/bin/env python3
"""Writes tests/fixtures/mllama/: references from transformers for Llama 3.2 Vision's
processor (MllamaImageProcessor, Pillow backend, and MllamaProcessor):

- cross_attention.json.xz: token ids (synthetic sequences, and prompts tokenized with the real
  Llama 3 tokenizer + <|image|> = 128256) with the dense cross_attention_mask transformers'
  get_cross_attention_token_mask + convert_sparse_cross_attention_mask_to_dense make of them.
- images/: test images with the sizes, aspect ratios and modes tests/fixtures/image/ lacks
  (1, 2, 3 and 4-tile canvases, RGBA/L/P, tiny and large); both sets are processed.
- manifest.json.xz + tensors.f32.xz: per image and config, the tile grid, aspect_ratio_ids,
  aspect_ratio_mask, num_tiles; for Llama 3.2 Vision's real config (560 x 560 tiles) the
  SHA-256 of every valid tile and sampled values; for reduced configs (bicubic, 6 tiles, no
  normalize, ...) the full tensors. Images go through the processor several per call.
- canvas.json.xz: get_optimal_tiled_canvas + get_image_size_fit_to_canvas for random and
  tie-prone (exact tile multiples) image sizes, tile sizes and max_image_tiles.
- llama-3.2-vision/, default/, small/, plain/: the preprocessor_config.json of each config
  (default/ is MllamaImageProcessor().save_pretrained as transformers writes it).

Run with /work/venv/bin/python. The C test (tests/test_mllama_processor.c) never needs Python."""
import hashlib
import io
import json
import lzma
import os
import random
import sys
import tempfile

import numpy as np
from PIL import Image, ImageOps

from transformers import PreTrainedTokenizerFast
from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil
from transformers.models.mllama.processing_mllama import (
    MllamaProcessor,
    convert_sparse_cross_attention_mask_to_dense,
    get_cross_attention_token_mask,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "mllama")
TOK_DIR = os.path.join(ROOT, "tests", "fixtures", "tokenizers", "llama3")
IMAGE_ID = 128256

# Llama-3.2-11B-Vision-Instruct's preprocessor_config.json (the published values).
LLAMA32_PRE = {
    "do_convert_rgb": True, "do_normalize": True, "do_pad": True, "do_rescale": True,
    "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "MllamaImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711], "max_image_tiles": 4, "resample": 2,
    "rescale_factor": 0.00392156862745098, "size": {"height": 560, "width": 560},
}


def write_xz(name, obj):
    data = json.dumps(obj, separators=(",", ":")).encode()
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def bits(a):
    return "".join("1" if v else "0" for v in np.asarray(a).reshape(-1))


def llama3_tokenizer():
    tmp = tempfile.mkdtemp()
    with lzma.open(os.path.join(TOK_DIR, "tokenizer.json.xz")) as f:
        open(os.path.join(tmp, "tokenizer.json"), "wb").write(f.read())
    cfg = json.load(open(os.path.join(TOK_DIR, "tokenizer_config.json")))
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(tmp, "tokenizer.json"),
                                  bos_token=cfg["bos_token"], eos_token=cfg["eos_token"])
    tok.add_special_tokens({"additional_special_tokens": ["<|image|>"]})
    assert tok.convert_tokens_to_ids("<|image|>") == IMAGE_ID
    return tok


def dense_case(ids, num_tiles, max_tiles, source):
    spans = get_cross_attention_token_mask(ids, IMAGE_ID)
    n_img = len(spans)
    if n_img:
        m = convert_sparse_cross_attention_mask_to_dense([spans], [num_tiles], max_tiles, len(ids))[0]
    else:
        m = np.zeros((len(ids), 0, max_tiles), dtype=np.int64)
    return {"source": source, "ids": ids, "num_tiles": num_tiles, "max_tiles": max_tiles,
            "n_images": n_img, "mask": bits(m)}


def cross_attention_cases():
    rng = random.Random(1234)
    cases = []
    hand = [
        [1, 2, 3],                                        # no image
        [IMAGE_ID],                                       # only an image
        [IMAGE_ID, 5, 6, 7],                              # one image first
        [5, 6, IMAGE_ID, 7, 8],                           # text before the first image
        [5, IMAGE_ID, IMAGE_ID, 7, 8],                    # consecutive images
        [IMAGE_ID, IMAGE_ID, IMAGE_ID],                   # images only
        [5, IMAGE_ID, 6, 7, IMAGE_ID, 8],                 # separated images
        [5, IMAGE_ID, 6, IMAGE_ID],                       # image token last
        [IMAGE_ID, IMAGE_ID, 6, IMAGE_ID, 7, IMAGE_ID, IMAGE_ID],
    ]
    for ids in hand:
        k = ids.count(IMAGE_ID)
        cases.append(dense_case(ids, [(i % 4) + 1 for i in range(k)], 4, "hand"))
    for _ in range(40):   # random sequences: images scattered, grouped, at the ends
        n = rng.randint(1, 40)
        p = rng.choice([0.05, 0.2, 0.5])
        ids = [IMAGE_ID if rng.random() < p else rng.randint(0, 128255) for _ in range(n)]
        k = ids.count(IMAGE_ID)
        max_tiles = rng.choice([1, 2, 4, 6])
        cases.append(dense_case(ids, [rng.randint(1, max_tiles) for _ in range(k)], max_tiles, "random"))
    return cases


def processor_cases(tok):
    """Prompts through MllamaProcessor itself (its BOS placement, the real tokenizer), with
    images of different shapes so that the tile counts differ."""
    ip = MllamaImageProcessorPil(**{k: v for k, v in LLAMA32_PRE.items() if k != "image_processor_type"})
    proc = MllamaProcessor(image_processor=ip, tokenizer=tok)
    shapes = [(300, 200), (1200, 400), (500, 1500), (900, 900)]   # (w, h): 1, 3, 3, 4 tiles
    prompts = [
        "<|image|>If I had to write a haiku for this one, it would be: ",
        "Describe <|image|> in one word.",
        "<|image|><|image|>Compare the two pictures.",
        "First: <|image|> and then <|image|>. Which is brighter?",
        "<|start_header_id|>user<|end_header_id|>\n\n<|image|>What is it?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "Text first. <|image|><|image|> more text <|image|> end",
    ]
    cases = []
    for i, text in enumerate(prompts):
        k = text.count("<|image|>")
        imgs = [Image.new("RGB", shapes[(i + j) % len(shapes)], (10 * j, 100, 200)) for j in range(k)]
        out = proc(text=text, images=imgs)
        ids = [int(v) for v in out["input_ids"][0]]
        c = dense_case(ids, [int(np.sum(out["aspect_ratio_mask"][0][j])) for j in range(k)], 4, "processor")
        assert c["mask"] == bits(out["cross_attention_mask"][0]), text
        c["text"] = text
        c["image_sizes"] = [list(im.size) for im in imgs]
        cases.append(c)
    return cases


IMG_DIR = os.path.join(ROOT, "tests", "fixtures", "image")
CONFIGS = {
    "llama-3.2-vision": dict(LLAMA32_PRE),
    # reduced tiles so that full tensors stay small; other settings exercised on the way
    "small": dict(LLAMA32_PRE, size={"height": 24, "width": 24}, max_image_tiles=6, resample=3),
    "plain": dict(LLAMA32_PRE, size={"height": 16, "width": 16}, max_image_tiles=2, resample=0,
                  do_normalize=False, rescale_factor=0.5),
}


def pattern(w, h, seed):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / (w / 7.0 + 1) + seed)
    g = 127 + 120 * np.cos(y / (h / 5.0 + 1) - seed)
    b = 127 + 40 * np.sin((x + 2 * y) / 31.0 + seed) + 60 * np.sin(x / (w / 3.0 + 1))
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def make_images():
    """(name, bytes) of the extra images, chosen so every canvas of max_image_tiles 4 occurs."""
    out = []

    def save(im, name, **kw):
        if name.endswith(".png") and im.mode in ("RGB", "RGBA", "L"):   # posterized: small PNGs
            im = Image.fromarray(np.asarray(im) & 0xF0, im.mode)
        b = io.BytesIO()
        im.save(b, format={"png": "PNG", "jpg": "JPEG"}[name.rsplit(".", 1)[1]], **kw)
        out.append((name, b.getvalue()))

    save(Image.fromarray(pattern(1500, 500, 1)), "wide_1500x500.jpg", quality=60)      # 1 x 3
    save(Image.fromarray(pattern(500, 1600, 2)), "tall_500x1600.jpg", quality=60)      # 3 x 1
    save(Image.fromarray(pattern(1200, 1200, 3)), "square_1200.jpg", quality=60)       # 2 x 2
    save(Image.fromarray(pattern(1100, 500, 4)), "wide_1100x500.png")                  # 1 x 2
    save(Image.fromarray(pattern(480, 1000, 5)), "tall_480x1000.jpg", quality=60)      # 2 x 1
    save(Image.fromarray(pattern(2600, 1900, 6)), "big_2600x1900.jpg", quality=30)     # 2 x 2, downscaled
    save(Image.fromarray(pattern(3000, 700, 7)), "pano_3000x700.jpg", quality=35)      # 1 x 4
    save(Image.fromarray(pattern(300, 2500, 8)), "tall_300x2500.jpg", quality=60)      # 4 x 1
    save(Image.fromarray(pattern(1, 7, 9)), "tiny_1x7.png")
    save(Image.fromarray(pattern(9, 1, 10)), "tiny_9x1.png")
    save(Image.fromarray(pattern(560, 560, 11)), "exact_560x560.png")                  # no resize
    save(Image.fromarray(pattern(1120, 560, 12)), "exact_1120x560.png")
    save(Image.fromarray(pattern(561, 560, 13)), "odd_561x560.png")
    rgba = np.dstack([pattern(900, 300, 14), (np.arange(900 * 300) % 251).reshape(300, 900).astype(np.uint8)])
    save(Image.fromarray(rgba, "RGBA"), "rgba_900x300.png")
    save(Image.fromarray(pattern(700, 1300, 15)).convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
         "p_700x1300.png")
    save(Image.fromarray(pattern(1000, 300, 16)).convert("L"), "l_1000x300.png")
    save(Image.fromarray(pattern(640, 480, 17)), "vga_640x480.jpg", quality=60)
    save(Image.fromarray(pattern(1920, 1080, 18)), "hd_1920x1080.jpg", quality=35)
    return out


def fixture_images(extra):
    """(name as the C test opens it relative to tests/fixtures/image, bytes)."""
    manifest = json.loads(lzma.open(os.path.join(IMG_DIR, "manifest.json.xz")).read())
    names = [d["name"] for d in manifest["decode"] if not d["name"].startswith("exif_") or d["name"] == "exif_6.jpg"]
    out = [(n, open(os.path.join(IMG_DIR, n), "rb").read()) for n in names]
    return out + [("../mllama/images/" + n, b) for n, b in extra]


def processor_refs(images, blob):
    refs = []
    rng = np.random.default_rng(7)
    for cname, cfg in CONFIGS.items():
        d = os.path.join(OUT, cname)
        os.makedirs(d, exist_ok=True)
        if cname != "default":
            json.dump(cfg, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=2)
        ip = MllamaImageProcessorPil(**{k: v for k, v in cfg.items() if k != "image_processor_type"})
        M = cfg["max_image_tiles"]
        for g in range(0, len(images), 3):   # three images per call, as one prompt's images
            group = images[g:g + 3]
            pil = [ImageOps.exif_transpose(Image.open(io.BytesIO(b))) for _, b in group]
            r = ip(images=[pil], return_tensors="np")
            pv = r["pixel_values"][0].astype(np.float32)
            for j, (name, _) in enumerate(group):
                nt = int(r["num_tiles"][0][j])
                assert not pv[j, nt:].any(), "padded tiles are not zero"
                arm = [int(v) for v in r["aspect_ratio_mask"][0][j]]
                ref = {"config": cname, "name": name, "n_tiles": nt, "max_tiles": M,
                       "aspect_ratio_id": int(r["aspect_ratio_ids"][0][j]), "aspect_ratio_mask": arm,
                       "tile": int(pv.shape[-1]), "zero_padded_tiles": M - nt,
                       "size": list(pil[j].size)}
                tiles = np.ascontiguousarray(pv[j, :nt])
                if cname in ("llama-3.2-vision", "default"):   # hashes: full tensors would be MBs
                    ref["tile_sha256"] = [hashlib.sha256(t.tobytes()).hexdigest() for t in tiles]
                    flat = tiles.reshape(-1)
                    idx = rng.integers(0, flat.size, 64)
                    ref["samples"] = [[int(i), float(flat[i])] for i in idx]
                else:
                    ref["offset"] = len(blob) // 4
                    ref["count"] = int(tiles.size)
                    blob += tiles.tobytes()
                refs.append(ref)
    return refs


def canvas_cases():
    from transformers.models.mllama.image_processing_pil_mllama import (
        get_all_supported_aspect_ratios, get_image_size_fit_to_canvas, get_optimal_tiled_canvas)
    rng = random.Random(99)
    rows = []
    for k in range(3000):
        M = rng.choice([1, 2, 3, 4, 4, 4, 5, 6, 8, 9, 12, 16, 64])
        tile = rng.choice([1, 2, 7, 14, 16, 224, 336, 448, 560, 560, 560, rng.randint(1, 1000)])
        if k % 3 == 0:   # exact multiples and near-multiples of the tile: scale ties
            h = max(1, tile * rng.randint(1, 5) + rng.choice([-1, 0, 0, 1]))
            w = max(1, tile * rng.randint(1, 5) + rng.choice([-1, 0, 0, 1]))
        else:
            h = int(np.exp(rng.uniform(0, np.log(20000))))
            w = int(np.exp(rng.uniform(0, np.log(20000))))
        ch, cw = (int(v) for v in get_optimal_tiled_canvas(h, w, M, tile))
        nh, nw = get_image_size_fit_to_canvas(h, w, ch, cw, tile)
        aid = get_all_supported_aspect_ratios(M).index((ch // tile, cw // tile)) + 1
        rows.append([h, w, M, tile, ch // tile, cw // tile, int(nh), int(nw), aid])
    return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    cc = canvas_cases()
    write_xz("canvas.json.xz", {"fields": "h w max_tiles tile rows cols new_h new_w aspect_ratio_id", "cases": cc})
    print(f"canvas.json.xz: {len(cc)} cases")
    tok = llama3_tokenizer()
    cases = cross_attention_cases() + processor_cases(tok)
    write_xz("cross_attention.json.xz", {"image_token_id": IMAGE_ID, "cases": cases})
    print(f"cross_attention.json.xz: {len(cases)} cases")

    extra = make_images()
    os.makedirs(os.path.join(OUT, "images"), exist_ok=True)
    for n, b in extra:
        open(os.path.join(OUT, "images", n), "wb").write(b)
    d = os.path.join(OUT, "default")
    os.makedirs(d, exist_ok=True)
    MllamaImageProcessorPil().save_pretrained(d)
    cfg = json.load(open(os.path.join(d, "preprocessor_config.json")))
    CONFIGS["default"] = cfg
    blob = bytearray()
    refs = processor_refs(fixture_images(extra), blob)
    write_xz("manifest.json.xz", {"processor": refs})
    with open(os.path.join(OUT, "tensors.f32.xz"), "wb") as f:
        f.write(lzma.compress(bytes(blob), preset=9 | lzma.PRESET_EXTREME))
    grids = sorted({(r["n_tiles"], r["aspect_ratio_id"]) for r in refs if r["config"] == "llama-3.2-vision"})
    print(f"manifest.json.xz: {len(refs)} refs; llama-3.2-vision (tiles, id): {grids}; tensors {len(blob)} bytes")


if __name__ == "__main__":
    sys.exit(main())
