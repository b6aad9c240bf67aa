#!/usr/bin/env python3
"""check_qwen25vl_big.py — one request to a running `vlm serve` of the Qwen2.5-VL-3B-shaped random
model (scripts/make_qwen25vl_fixtures.py --big DIR): an image + question through
/v1/chat/completions, with and without mm_processor_kwargs {min_pixels, max_pixels}, checking
the status, the answer's token count and usage.prompt_tokens against what transformers' chat
template + Qwen2VLImageProcessorPil + tokenizer give for the same messages (the image-token
expansion of Qwen2_5_VLProcessor: grid_t*grid_h*grid_w / merge^2 <|image_pad|> per image).

Usage: /work/venv/bin/python scripts/check_qwen25vl_big.py DIR [--port 8000]
"""
import argparse
import base64
import json
import os
import time
import urllib.request

from PIL import Image
from transformers import AutoTokenizer
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil


def expected_prompt_tokens(d, img, text, kwargs):
    tok = AutoTokenizer.from_pretrained(d)
    pre = json.load(open(os.path.join(d, "preprocessor_config.json")))
    ip = Qwen2VLImageProcessorPil(min_pixels=kwargs.get("min_pixels", pre["min_pixels"]),
                                  max_pixels=kwargs.get("max_pixels", pre["max_pixels"]),
                                  patch_size=pre["patch_size"], merge_size=pre["merge_size"],
                                  temporal_patch_size=pre["temporal_patch_size"])
    grid = ip([img], return_tensors="np")["image_grid_thw"][0]
    n = int(grid.prod()) // pre["merge_size"] ** 2
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    tmpl = open(os.path.join(d, "chat_template.jinja")).read()
    prompt = tok.apply_chat_template(msgs, chat_template=tmpl, tokenize=False, add_generation_prompt=True)
    prompt = prompt.replace("<|image_pad|>", "<|image_pad|>" * n, 1)
    return len(tok(prompt)["input_ids"]), [int(g) for g in grid]


def ask(port, data_url, text, kwargs):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as r:
        model = json.load(r)["data"][0]["id"]
    body = {"model": model, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}},
                                                      {"type": "text", "text": text}]}]}
    if kwargs:
        body["mm_processor_kwargs"] = kwargs
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    t0 = time.time()
    with urllib.request.urlopen(req, timeout=1200) as r:
        out = json.load(r)
    return out, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--port", type=int, default=8000)
    a = ap.parse_args()
    path = os.path.join(a.dir, "test-640x448.png")
    img = Image.open(path).convert("RGB")
    url = "data:image/png;base64," + base64.b64encode(open(path, "rb").read()).decode()
    text = "What is in this image?"
    for _ in range(600):   # until the server answers /health
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{a.port}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(1)
    ok = True
    for kw in ({}, {"min_pixels": 3136, "max_pixels": 200704}):   # clamping: tests/e2e/test_qwen25vl.py
        want, grid = expected_prompt_tokens(a.dir, img, text, {k: min(v, 12845056) for k, v in kw.items()})
        out, dt = ask(a.port, url, text, kw)
        u = out["usage"]
        good = u["prompt_tokens"] == want and u["completion_tokens"] == 8
        ok &= good
        print(f"mm_processor_kwargs {kw}: grid {grid}, prompt_tokens {u['prompt_tokens']} (transformers {want}), "
              f"completion_tokens {u['completion_tokens']}, {dt:.1f} s, finish {out['choices'][0]['finish_reason']}"
              f" -> {'ok' if good else 'MISMATCH'}")
    print("all ok" if ok else "FAILED")


if __name__ == "__main__":
    main()
