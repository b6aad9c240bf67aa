#!/usr/bin/env python3
"""Writes tests/fixtures/mllama/: references from transformers for Llama 3.2 Vision's
processor (MllamaImageProcessor, Pillow backend, and MllamaProcessor):

- cross_attention.json.xz: token ids (synthetic sequences, and prompts tokenized with the real
  Llama 3 tokenizer + <|image|> = 128256) with the dense cross_attention_mask transformers'
  get_cross_attention_token_mask + convert_sparse_cross_attention_mask_to_dense make of them.

Run with /work/venv/bin/python. The C test (tests/test_mllama_processor.c) never needs Python."""
import io
import json
import lzma
import os
import random
import sys
import tempfile

import numpy as np
from PIL import Image

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
        cases.append(c)
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = llama3_tokenizer()
    cases = cross_attention_cases() + processor_cases(tok)
    write_xz("cross_attention.json.xz", {"image_token_id": IMAGE_ID, "cases": cases})
    print(f"cross_attention.json.xz: {len(cases)} cases")


if __name__ == "__main__":
    sys.exit(main())
