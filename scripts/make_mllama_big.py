#!/usr/bin/env python3
"""make_mllama_big.py — an 11B-shaped Llama 3.2 Vision folder with random bf16 weights, for the
memory and speed checks of the Mllama family (never committed: ~21 GB).

The tensor names and shapes come from transformers' MllamaForConditionalGeneration built on the
meta device (no memory) with the published Llama-3.2-11B-Vision-Instruct config; each tensor is
written straight to the safetensors file in bf16 with numpy (norm weights 1, small random
values elsewhere), one tensor at a time, so that the script needs well under 1 GB. The folder
also gets the real Llama 3 tokenizer plus <|image|> (id 128256), the Llama 3.2 Vision chat
template and the MllamaImageProcessor config.

Usage: flock /work/big.lock /work/venv/bin/python scripts/make_mllama_big.py /work/models-big/mllama-11b-random
"""
import json
import lzma
import os
import struct
import sys

import numpy as np
import torch
from transformers import MllamaConfig, MllamaForConditionalGeneration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = dict(bos_token_id=128000, cross_attention_layers=[3, 8, 13, 18, 23, 28, 33, 38],
            eos_token_id=[128001, 128008, 128009], hidden_act="silu", hidden_size=4096, intermediate_size=14336,
            max_position_embeddings=131072, num_attention_heads=32, num_hidden_layers=40, num_key_value_heads=8,
            pad_token_id=128004, rms_norm_eps=1e-5,
            rope_scaling=dict(factor=8.0, high_freq_factor=4.0, low_freq_factor=1.0,
                              original_max_position_embeddings=8192, rope_type="llama3"),
            rope_theta=500000.0, tie_word_embeddings=False, vocab_size=128256, model_type="mllama_text_model")
VISION = dict(attention_heads=16, hidden_act="gelu", hidden_size=1280, image_size=560,
              intermediate_layers_indices=[3, 7, 15, 23, 30], intermediate_size=5120, max_num_tiles=4,
              norm_eps=1e-5, num_channels=3, num_global_layers=8, num_hidden_layers=32, patch_size=14,
              supported_aspect_ratios=[[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
              vision_output_dim=7680, model_type="mllama_vision_model")
PREPROC = dict(do_convert_rgb=True, do_normalize=True, do_pad=True, do_rescale=True, do_resize=True,
               image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
               image_processor_type="MllamaImageProcessor", max_image_tiles=4, processor_class="MllamaProcessor",
               resample=2, rescale_factor=1 / 255, size=dict(height=560, width=560))


def bf16_pool(n, seed):
    x = (np.random.default_rng(seed).standard_normal(n, dtype=np.float32) * 0.02).view(np.uint32)
    return ((x + 0x7FFF + ((x >> 16) & 1)) >> 16).astype(np.uint16)   # round to nearest even


def tensor_bytes(name, shape, pool, k):
    n = int(np.prod(shape))
    if name.endswith("norm.weight") or "layernorm" in name and name.endswith(".weight"):
        return np.full(n, 0x3F80, np.uint16).tobytes()   # 1.0
    if "gate" in name and n == 1:
        return np.array([0x3F00], np.uint16).tobytes()    # 0.5
    off = (k * 7919) % len(pool)
    reps = np.resize(np.roll(pool, -off), n)
    return reps.tobytes()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    cfg = MllamaConfig(vision_config=VISION, text_config=TEXT, image_token_index=128256)
    with torch.device("meta"):
        model = MllamaForConditionalGeneration(cfg)
    params = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    total = sum(int(np.prod(s)) for _, s in params)
    print(f"{len(params)} tensors, {total / 1e9:.3f} B parameters", flush=True)
    header, off = {}, 0
    for n, s in params:
        nb = int(np.prod(s)) * 2
        header[n] = dict(dtype="BF16", shape=list(s), data_offsets=[off, off + nb])
        off += nb
    header["__metadata__"] = dict(format="pt")
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    pool = bf16_pool(1 << 24, 0)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for k, (n, s) in enumerate(params):
            f.write(tensor_bytes(n, s, pool, k))
    c = cfg.to_dict()
    c["architectures"] = ["MllamaForConditionalGeneration"]
    c["text_config"].update(TEXT)
    c["vision_config"].update(VISION)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(dict(bos_token_id=128000, eos_token_id=[128001, 128008, 128009], pad_token_id=128004,
                       do_sample=False), f, indent=2)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROC, f, indent=2)
    with lzma.open("/work/shared/tokenizers/llama3/tokenizer.json.xz") as f:
        tok = json.load(f)
    if not any(t["content"] == "<|image|>" for t in tok["added_tokens"]):
        tok["added_tokens"].append(dict(id=128256, content="<|image|>", single_word=False, lstrip=False,
                                        rstrip=False, normalized=False, special=True))
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    tc = json.load(open("/work/shared/tokenizers/llama3/tokenizer_config.json"))
    tc.pop("chat_template", None)
    tc["added_tokens_decoder"]["128256"] = dict(content="<|image|>", lstrip=False, normalized=False, rstrip=False,
                                                single_word=False, special=True)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2)
    tmpl = open(os.path.join(ROOT, "tests/fixtures/templates/llama32_vision/chat_template.jinja")).read()
    with open(os.path.join(out, "chat_template.jinja"), "w") as f:
        f.write(tmpl)
    print("wrote", out, f"{off / 1e9:.2f} GB of weights", flush=True)


if __name__ == "__main__":
    main()
