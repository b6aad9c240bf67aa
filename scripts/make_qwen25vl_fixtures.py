#!/usr/bin/env python3
"""make_qwen25vl_fixtures.py — tiny random-weight Qwen2.5-VL and Qwen2-VL models and their
reference outputs from Hugging Face transformers, for tests/test_model_qwen25vl.c.

Writes tests/fixtures/qwen25vl/<name>/ for each configuration below: config.json (re-saved
transformers-5 style, or the published flat style for the *-flat configuration),
model.safetensors (f32), preprocessor_config.json, and ref.json + pixel_values.f32 +
image_embeds.f32: input_ids (with <|vision_start|> <|image_pad|>... <|vision_end|> spans),
per-image grid_thw, the image embeddings the vision tower + merger give (every image, in prompt
order), next-token logits of the prompt, the rope delta, and a 16-token greedy continuation
(decode positions = cache length + rope delta, as generate() does).

Configurations cover: window attention whose window does and does not divide the merged grid,
full-attention blocks between windowed ones, several images of different sizes, GQA and MHA,
tied and untied heads, a flat (published) config.json, and Qwen2-VL (LayerNorm + quick-GELU
vision blocks, no windows).

With --big DIR it writes a model of the exact shapes of Qwen2.5-VL-3B-Instruct (its real
config, preprocessor config, chat template, and the Qwen2 tokenizer) with random bf16 weights,
written tensor by tensor with numpy (no torch model of 3.8 B parameters in memory). ~7.5 GB,
never committed.

Usage: /work/venv/bin/python scripts/make_qwen25vl_fixtures.py [--out tests/fixtures/qwen25vl]
       [--only NAME] [--big /work/models-big/qwen25vl-3b-random]
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
from PIL import Image

SHARED = "/work/shared"
QWEN = f"{SHARED}/models/Qwen--Qwen2.5-VL-3B-Instruct"

VOCAB = 320
IMAGE_TOKEN, VIDEO_TOKEN, VSTART, VEND = 300, 301, 302, 303
N_GREEDY = 16

# (name, family, vision, text, extra)
CONFIGS = [
    ("q25-gqa-tied-nodiv", "qwen2_5_vl",
     dict(depth=3, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=64, patch_size=4,
          spatial_merge_size=2, temporal_patch_size=2, window_size=16, fullatt_block_indexes=[1]),
     dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
          mrope_section=[2, 3, 3], rope_theta=10000.0),
     # merged grids 6x5 and 3x7 with 2x2 windows: windows that do not divide the grid
     dict(tie=True, images=[(48, 40), (24, 56)], min_pixels=8 * 8 * 4, max_pixels=8 * 8 * 64)),
    ("q25-mha-untied-div-flat", "qwen2_5_vl",
     dict(depth=2, hidden_size=48, intermediate_size=40, num_heads=4, out_hidden_size=48, patch_size=4,
          spatial_merge_size=2, temporal_patch_size=2, window_size=24, fullatt_block_indexes=[0]),
     dict(hidden_size=48, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
          mrope_section=[2, 2, 2], rope_theta=100000.0),
     # merged grid 6x9 with 3x3 windows: windows divide the grid
     dict(tie=False, images=[(48, 72)], min_pixels=8 * 8 * 4, max_pixels=8 * 8 * 64, flat=True)),
    ("q25-gqa-untied-three", "qwen2_5_vl",
     dict(depth=4, hidden_size=32, intermediate_size=56, num_heads=2, out_hidden_size=40, patch_size=2,
          spatial_merge_size=2, temporal_patch_size=2, window_size=12, fullatt_block_indexes=[1, 3]),
     dict(hidden_size=40, intermediate_size=72, num_hidden_layers=2, num_attention_heads=5, num_key_value_heads=1,
          mrope_section=[1, 1, 2], rope_theta=1000000.0),
     # merged grids with 3x3 windows, three images (a tall, a wide, a small one)
     dict(tie=False, images=[(40, 20), (16, 36), (9, 9)], min_pixels=4 * 4 * 4, max_pixels=4 * 4 * 60)),
    ("q2vl-gqa-tied", "qwen2_vl",
     dict(depth=2, embed_dim=32, hidden_size=48, mlp_ratio=2, num_heads=2, patch_size=4, spatial_merge_size=2,
          temporal_patch_size=2),
     dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
          mrope_section=[2, 2, 2], rope_theta=10000.0),
     dict(tie=True, images=[(40, 48), (32, 24)], min_pixels=8 * 8 * 4, max_pixels=8 * 8 * 64)),
]


def make_image(rng, h, w):
    """A smooth colourful test image (random noise would make the resize path trivial)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 120 * np.sin(x / max(w, 1) * 6.0 + rng.uniform(0, 3))
    g = 127 + 120 * np.cos(y / max(h, 1) * 5.0 + rng.uniform(0, 3))
    b = 127 + 120 * np.sin((x + y) / (h + w) * 7.0)
    a = np.stack([r, g, b], -1) + rng.normal(0, 10, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def classes(family):
    if family == "qwen2_vl":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
        return Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    return Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration


def greedy(model, input_ids, pv, grid, n):
    """Prompt logits, the rope delta, and an n-token greedy continuation with the KV cache."""
    mm = (input_ids == model.config.image_token_id).int()
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pv, image_grid_thw=grid, mm_token_type_ids=mm, use_cache=True)
        logits0 = out.logits[0, -1].clone()
        delta = int(model.model.rope_deltas[0, 0])
        cache, toks, nxt, gaps = out.cache, [], int(torch.argmax(out.logits[0, -1])), []
        for _ in range(n):
            toks.append(nxt)
            o = model(input_ids=torch.tensor([[nxt]]), cache=cache, use_cache=True)
            cache = o.cache
            top2 = torch.topk(o.logits[0, -1], 2).values
            gaps.append(float(top2[0] - top2[1]))
            nxt = int(torch.argmax(o.logits[0, -1]))
        last = o.logits[0, -1].clone()
    return logits0, delta, toks, min(gaps), last


def flat_config(d):
    """Rewrites a re-saved config.json in the published (transformers 4) flat style."""
    p = os.path.join(d, "config.json")
    c = json.load(open(p))
    t = c.pop("text_config")
    rp = t.pop("rope_parameters")
    for k in ("model_type", "layer_types", "dtype"):
        t.pop(k, None)
    c.update(t)
    c["rope_theta"] = rp["rope_theta"]
    c["rope_scaling"] = {"type": "mrope", "mrope_section": rp["mrope_section"]}
    v = c["vision_config"]
    v.pop("rope_parameters", None)
    v["in_chans"] = v.pop("in_channels", 3)
    json.dump(c, open(p, "w"), indent=2)


def build_tiny(out, name, family, vis, txt, ex, seed):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    Config, Model = classes(family)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    txt = dict(txt)
    rope = dict(rope_type="default", rope_theta=txt.pop("rope_theta"), mrope_section=txt.pop("mrope_section"))
    cfg = Config(vision_config=dict(vis, initializer_range=0.1),
                 text_config=dict(txt, vocab_size=VOCAB, max_position_embeddings=1024, initializer_range=0.25,
                                  rms_norm_eps=1e-6, rope_parameters=rope, bos_token_id=1, eos_token_id=2),
                 image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN, vision_start_token_id=VSTART,
                 vision_end_token_id=VEND, tie_word_embeddings=ex["tie"])
    model = Model(cfg).eval()
    with torch.no_grad():   # non-trivial norms so that a wrong weight shows in the logits
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
    merge = vis["spatial_merge_size"]
    ip = Qwen2VLImageProcessorPil(patch_size=vis["patch_size"], merge_size=merge,
                                  temporal_patch_size=vis["temporal_patch_size"],
                                  min_pixels=ex["min_pixels"], max_pixels=ex["max_pixels"])
    images = [make_image(rng, h, w) for h, w in ex["images"]]
    proc = ip(images, return_tensors="pt")
    pv, grid = proc["pixel_values"], proc["image_grid_thw"]
    ids = [1] + [int(x) for x in rng.integers(3, 250, 4)]
    for g in grid.tolist():
        n = g[0] * g[1] * g[2] // merge ** 2
        ids += [VSTART] + [IMAGE_TOKEN] * n + [VEND] + [int(x) for x in rng.integers(3, 250, 3)]
    ids += [int(x) for x in rng.integers(3, 250, 4)]
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        emb = torch.cat(model.model.get_image_features(pv, grid).pooler_output, 0)
    logits, delta, toks, gap, last = greedy(model, input_ids, pv, grid, N_GREEDY)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    if ex.get("flat"):
        flat_config(d)
    ip.to_json_file(os.path.join(d, "preprocessor_config.json"))
    pv.numpy().astype("<f4").tofile(os.path.join(d, "pixel_values.f32"))
    emb.numpy().astype("<f4").tofile(os.path.join(d, "image_embeds.f32"))
    ref = dict(input_ids=ids, grid_thw=grid.tolist(), patch_dim=int(pv.shape[1]), rope_delta=delta,
               logits=[float(x) for x in logits], greedy=toks, last_logits=[float(x) for x in last], min_greedy_gap=gap, family=family)
    json.dump(ref, open(os.path.join(d, "ref.json"), "w"))
    print(f"{name}: {len(ids)} ids, grids {grid.tolist()}, delta {delta}, greedy {toks[:6]}..., min gap {gap:.4f}")


SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
            "<|video_pad|>", "<|vision_pad|>"]
SERVE_REQUESTS = [("What is in this image?", {}), ("Describe it.", {"max_pixels": 8 * 8 * 12}),
                  ("Describe it.", {"min_pixels": 8 * 8 * 40, "max_pixels": 1 << 30})]


def byte_level_tokenizer(d):
    """A byte-level BPE without merges (token b = byte b) plus Qwen2's special tokens, ids from 256."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    b2u = pre_tokenizers.ByteLevel.alphabet()   # the 256 characters GPT-2's byte map uses
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs, k = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + k)
            k += 1
    b2u = {b: chr(c) for b, c in zip(bs, cs)}
    tok = Tokenizer(models.BPE(vocab={b2u[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.save_pretrained(d)
    os.remove(os.path.join(d, "chat_template.jinja")) if os.path.exists(os.path.join(d, "chat_template.jinja")) else None
    shutil.copy(os.path.join(QWEN, "chat_template.jinja"), d)
    return PreTrainedTokenizerFast.from_pretrained(d)


def build_serve(out, seed=400):
    """A tiny Qwen2.5-VL with a real (byte-level) tokenizer, the real chat template and a small
    processor: served end to end by tests/e2e/test_qwen25vl.py, whose answers (8 greedy tokens,
    ignore_eos) and prompt lengths are transformers' for each request in SERVE_REQUESTS."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    d = os.path.join(out, "q25-serve")
    os.makedirs(d, exist_ok=True)
    tok = byte_level_tokenizer(d)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    torch.manual_seed(seed)
    cfg = Qwen2_5_VLConfig(
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=48, patch_size=4,
                           spatial_merge_size=2, temporal_patch_size=2, window_size=16, fullatt_block_indexes=[1],
                           initializer_range=0.1),
        text_config=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=2048, initializer_range=0.25,
                         rms_norm_eps=1e-6, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[2, 2, 2])),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(d, safe_serialization=True)
    pre = dict(min_pixels=8 * 8 * 4, max_pixels=8 * 8 * 36, patch_size=4, merge_size=2, temporal_patch_size=2)
    ip = Qwen2VLImageProcessorPil(**pre)
    cfgj = ip.to_dict()
    cfgj.update(pre, image_processor_type="Qwen2VLImageProcessor", processor_class="Qwen2_5_VLProcessor")
    for k in ("size",):
        cfgj.pop(k, None)
    json.dump(cfgj, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=2)
    img = make_image(np.random.default_rng(seed), 44, 60)
    img.save(os.path.join(d, "image.png"))
    img = Image.open(os.path.join(d, "image.png")).convert("RGB")
    tmpl = open(os.path.join(d, "chat_template.jinja")).read()
    refs = []
    for text, kw in SERVE_REQUESTS:
        kw2 = {k: min(v, pre["max_pixels"]) for k, v in kw.items()}
        kw2["min_pixels"] = min(kw2.get("min_pixels", pre["min_pixels"]), kw2.get("max_pixels", pre["max_pixels"]))
        p = Qwen2VLImageProcessorPil(**dict(pre, **kw2))(images=[img], return_tensors="pt")
        n = int(p["image_grid_thw"].prod()) // 4
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        prompt = tok.apply_chat_template(msgs, chat_template=tmpl, tokenize=False, add_generation_prompt=True)
        prompt = prompt.replace("<|image_pad|>", "<|image_pad|>" * n, 1)
        input_ids = torch.tensor([tok(prompt)["input_ids"]])
        _, _, toks, gap, _ = greedy(model, input_ids, p["pixel_values"], p["image_grid_thw"], 8)
        refs.append(dict(text=text, mm_processor_kwargs=kw, grid_thw=p["image_grid_thw"][0].tolist(),
                         prompt_tokens=int(input_ids.shape[1]), greedy=toks, min_greedy_gap=gap,
                         token_bytes=[list(tok.decode([t]).encode()) if t >= 256 else
                                     list(bytes([t]).decode("utf-8", "replace").encode()) for t in toks]))
        print(f"serve: {text!r} {kw}: grid {refs[-1]['grid_thw']}, {input_ids.shape[1]} prompt tokens, greedy {toks}, gap {gap:.4f}")
    json.dump(refs, open(os.path.join(d, "serve_ref.json"), "w"), indent=1)


def bf16_pool(rng, n):
    """n random bf16 values (as uint16) of a normal distribution with std 0.02."""
    f = (rng.standard_normal(n, dtype=np.float32) * 0.02).view(np.uint32)
    return ((f + 0x7FFF + ((f >> 16) & 1)) >> 16).astype(np.uint16)   # round to nearest even


def build_big(d, seed=0, shard_bytes=2 << 30):
    """Qwen2.5-VL-3B shapes (from a meta-device model of the real config), random bf16 weights
    written tensor by tensor: norms 1, biases and weights N(0, 0.02) drawn from one pool."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    import lzma
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(QWEN):
        shutil.copy(os.path.join(QWEN, f), d)
    with lzma.open(f"{SHARED}/tokenizers/qwen3/tokenizer.json.xz") as src, open(os.path.join(d, "tokenizer.json"), "wb") as dst:
        dst.write(src.read())
    tc = json.load(open(f"{SHARED}/tokenizers/qwen3/tokenizer_config.json"))
    tc.pop("chat_template", None)   # the model's own chat_template.jinja applies
    tc["eos_token"] = "<|im_end|>"
    json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
    cfg = Qwen2_5_VLConfig.from_pretrained(d)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(cfg)
    names = []
    for n, p in model.named_parameters():
        if n == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        n = n.replace("model.language_model.", "model.").replace("model.visual.", "visual.")
        names.append((n, tuple(p.shape)))
    rng = np.random.default_rng(seed)
    pool = bf16_pool(rng, 1 << 26)
    shards, cur, size = [], [], 0
    for n, shape in names:
        nb = int(np.prod(shape)) * 2
        if cur and size + nb > shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append((n, shape))
        size += nb
    shards.append(cur)
    weight_map, total = {}, 0
    for i, sh in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {}, 0
        for n, shape in sh:
            nb = int(np.prod(shape)) * 2
            header[n] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nb]}
            off += nb
            weight_map[n] = fname
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(d, fname), "wb") as f:
            f.write(len(h).to_bytes(8, "little"))
            f.write(h)
            for n, shape in sh:
                k = int(np.prod(shape))
                if n.endswith("norm.weight") or "layernorm" in n or n.endswith("norm1.weight") or \
                        n.endswith("norm2.weight") or n.endswith("ln_q.weight"):
                    a = np.full(k, 0x3F80, dtype=np.uint16)   # 1.0
                else:
                    start = int(rng.integers(0, len(pool)))
                    a = np.take(pool, np.arange(start, start + k) % len(pool)) if k > len(pool) - start else pool[start:start + k]
                f.write(np.ascontiguousarray(a).tobytes())
        total += off
        print(f"wrote {fname}: {len(sh)} tensors, {off / 2**30:.2f} GiB")
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=1)
    img = make_image(np.random.default_rng(seed), 448, 640)
    img.save(os.path.join(d, "test-640x448.png"))
    print(f"big: {len(names)} tensors, {total / 2**30:.2f} GiB in {len(shards)} shards")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "qwen25vl"))
    ap.add_argument("--only", default=None, help="build only this tiny configuration")
    ap.add_argument("--big", default=None)
    ap.add_argument("--only-big", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if not a.only_big:
        for i, (name, fam, vis, txt, ex) in enumerate(CONFIGS):
            if a.only is None or a.only == name:
                build_tiny(a.out, name, fam, vis, txt, ex, seed=300 + i)
        if a.only is None or a.only == "q25-serve":
            build_serve(a.out)
    if a.big:
        build_big(a.big)


if __name__ == "__main__":
    main()
