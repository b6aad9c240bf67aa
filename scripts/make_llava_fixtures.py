#!/usr/bin/env python3
"""make_llava_fixtures.py — tiny random-weight LlavaForConditionalGeneration models (float32) and
their reference outputs from Hugging Face transformers, for tests/test_model_llava.c.

Writes tests/fixtures/llava/<name>/ for each configuration below: config.json,
generation_config.json, model.safetensors, preprocessor_config.json, processor_config.json,
image_<i>.png, pixel_values.f32 (n_images, 3, S, S) from CLIPImageProcessor, and ref.json (input_ids, per-image
image-token counts, next-token logits of the prompt, a 16-token greedy continuation with the
KV cache, the smallest top-2 logit gap along it). The configurations cover one and two images of
different sizes, GQA and MHA, tied and untied heads, vision_feature_layer -2, -1 and a list,
vision_feature_select_strategy default and full, CLIP's quick_gelu and gelu, and three tensor
namings (see RENAME), each checked by reloading it in transformers.

With --big DIR it writes a LLaVA-1.5-7B-shaped folder instead (the real config, processor,
template and tokenizer files; random bf16 weights written tensor by tensor with numpy, ~14 GB;
not committed) and a reference prompt (ids of the real LlavaProcessor for one image).

Usage: /work/venv/bin/python scripts/make_llava_fixtures.py [--out tests/fixtures/llava]
       /work/venv/bin/python scripts/make_llava_fixtures.py --big /work/models-big/llava-1.5-7b-random \\
           --tokenizer /path/to/llava-1.5-7b-hf/tokenizer.json
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np
import torch
from PIL import Image

SHARED = "/work/shared"
LLAVA = f"{SHARED}/models/llava-hf--llava-1.5-7b-hf"

VOCAB = 320
IMAGE_TOKEN = 300
BOS = 1
N_GREEDY = 16

# (name, vision, text, extra)
CONFIGS = [
    ("gqa-untied-layer-2",
     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=28, patch_size=7),
     dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
          rope_theta=10000.0),
     dict(tie=False, images=[(40, 56)], feature_layer=-2, strategy="default", naming="saved")),
    ("memory-names-mha-tied-two-images-full",
     dict(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8),
     dict(hidden_size=48, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
          rope_theta=100000.0),
     dict(tie=True, images=[(60, 100), (90, 40)], feature_layer=-1, strategy="full", naming="memory")),
    ("published-names-layers-list",
     dict(hidden_size=36, intermediate_size=72, num_hidden_layers=3, num_attention_heads=3, image_size=24, patch_size=6,
          hidden_act="gelu"),
     dict(hidden_size=40, intermediate_size=72, num_hidden_layers=2, num_attention_heads=5, num_key_value_heads=1,
          rope_theta=10000.0),
     dict(tie=False, images=[(30, 30), (17, 50)], feature_layer=[-3, -1], strategy="default", naming="published")),
    # LLaVA-NeXT (LlavaNextForConditionalGeneration): anyres tiles of 28 px
    ("next-gqa-untied-wide",
     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=28, patch_size=7),
     dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
          rope_theta=10000.0),
     dict(tie=False, images=[(40, 90)], feature_layer=-2, strategy="default", naming="saved",
          next=[[28, 56], [56, 28], [56, 56], [84, 28], [28, 84]])),
    ("next-memory-names-tied-two-images",
     dict(hidden_size=36, intermediate_size=72, num_hidden_layers=2, num_attention_heads=3, image_size=28, patch_size=7),
     dict(hidden_size=40, intermediate_size=72, num_hidden_layers=2, num_attention_heads=5, num_key_value_heads=5,
          rope_theta=100000.0),
     dict(tie=True, images=[(100, 60), (30, 33)], feature_layer=[-2, -1], strategy="default", naming="memory",
          next=[[28, 56], [56, 28], [56, 56], [84, 28], [28, 84]])),
]


def make_image(rng, h, w):
    """A smooth colourful test image (random noise would make the resize path trivial)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 120 * np.sin(x / max(w, 1) * 6.0 + rng.uniform(0, 3))
    g = 127 + 120 * np.cos(y / max(h, 1) * 5.0 + rng.uniform(0, 3))
    b = 127 + 120 * np.sin((x + y) / (h + w) * 7.0)
    a = np.stack([r, g, b], -1) + rng.normal(0, 10, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def greedy(model, input_ids, pixel_values, n, **kw):
    """Prompt logits and an n-token greedy continuation with the KV cache (as generate does)."""
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixel_values, use_cache=True, **kw)
        logits0 = out.logits[0, -1].clone()
        past, toks, nxt, gaps = out.past_key_values, [], int(torch.argmax(out.logits[0, -1])), []
        for _ in range(n):
            toks.append(nxt)
            o = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = o.past_key_values
            top2 = torch.topk(o.logits[0, -1], 2).values
            gaps.append(float(top2[0] - top2[1]))
            nxt = int(torch.argmax(o.logits[0, -1]))
    return logits0, toks, min(gaps)


def published_name(k):
    """transformers 5's in-memory tensor name -> the name llava-hf checkpoints are published with."""
    if k == "lm_head.weight":
        return "language_model.lm_head.weight"
    if k == "model.image_newline":
        return "image_newline"
    for new, old in (("model.language_model.", "language_model.model."),
                     ("model.vision_tower.", "vision_tower.vision_model."),
                     ("model.multi_modal_projector.", "multi_modal_projector.")):
        if k.startswith(new):
            return old + k[len(new):]
    raise ValueError(k)


# Tensor namings a LLaVA folder may hold: "saved" as transformers 5.24's save_pretrained writes
# it ("language_model.model.*" but "vision_tower.*" without "vision_model."), "memory" as its
# modules name them ("model.language_model.*", "lm_head.weight"), "published" as llava-hf's.
RENAME = {"memory": lambda k: k, "published": published_name}


def build_tiny(out, name, vis, txt, ex, seed):
    from safetensors.torch import save_file
    from transformers import (AutoImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaNextConfig,
                              LlavaNextForConditionalGeneration)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    nxt = ex.get("next")
    Config, Model = (LlavaNextConfig, LlavaNextForConditionalGeneration) if nxt else (LlavaConfig, LlavaForConditionalGeneration)
    extra_cfg = dict(image_grid_pinpoints=nxt) if nxt else {}
    cfg = Config(**extra_cfg,
        vision_config=dict(vis, model_type="clip_vision_model", initializer_range=0.1, projection_dim=16),
        text_config=dict(txt, model_type="llama", vocab_size=VOCAB, max_position_embeddings=1024, initializer_range=0.1,
                         rms_norm_eps=1e-5, bos_token_id=BOS, eos_token_id=2, pad_token_id=0),
        image_token_index=IMAGE_TOKEN, vision_feature_layer=ex["feature_layer"],
        vision_feature_select_strategy=ex["strategy"], tie_word_embeddings=ex["tie"], projector_hidden_act="gelu")
    model = Model(cfg).eval()
    with torch.no_grad():   # non-trivial norms and biases so that a wrong weight shows in the logits
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    s = vis["image_size"]
    pre = {"crop_size": {"height": s, "width": s}, "do_center_crop": True, "do_convert_rgb": True,
           "do_normalize": True, "do_rescale": True, "do_resize": True,
           "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
           "image_std": [0.26862954, 0.26130258, 0.27577711], "processor_class": "LlavaProcessor", "resample": 3,
           "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": s}}
    if nxt:
        proc = next_processor_files(d, s, nxt, vis["patch_size"], ex["strategy"])
    else:
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(pre, f, indent=2)
        with open(os.path.join(d, "processor_config.json"), "w") as f:
            json.dump({"image_token": "<image>", "num_additional_image_tokens": 1, "patch_size": vis["patch_size"],
                       "processor_class": "LlavaProcessor", "vision_feature_select_strategy": ex["strategy"]}, f, indent=2)
    ip = AutoImageProcessor.from_pretrained(d, backend="pil")
    images = [make_image(rng, h, w) for h, w in ex["images"]]
    for i, im in enumerate(images):   # the C processor must turn these into pixel_values
        im.save(os.path.join(d, f"image_{i}.png"))
    r = ip(images=images, return_tensors="np")
    pv = r["pixel_values"].astype(np.float32)
    kw, sizes, n_tiles = {}, [[h, w] for h, w in ex["images"]], [1] * len(images)
    if nxt:   # (images, max tiles, 3, s, s) padded for batching; each image keeps its own tiles
        kw = dict(image_sizes=torch.from_numpy(r["image_sizes"]))
        sizes = [[int(v) for v in hw] for hw in r["image_sizes"]]
        n_tok = [next_token_count(ip, proc, h, w) for h, w in sizes]
        n_tiles = [1 + (b[0] // s) * (b[1] // s) for b in (best_resolution(hw, nxt) for hw in sizes)]
        flat = np.concatenate([pv[i, :n_tiles[i]] for i in range(len(images))])
    else:
        n_tok = [(s // vis["patch_size"]) ** 2 + (0 if ex["strategy"] == "default" else 1)] * len(images)
        flat = pv
    ids = [BOS] + [int(t) for t in rng.integers(3, 250, 5)]
    for i in range(len(images)):   # as the template renders "USER: <image>\n..." and the processor expands it
        ids += [IMAGE_TOKEN] * n_tok[i] + [int(t) for t in rng.integers(3, 250, 3)]
    ids += [int(t) for t in rng.integers(3, 250, 4)]
    logits, toks, gap = greedy(model, torch.tensor([ids]), torch.from_numpy(pv), N_GREEDY, **kw)
    model.save_pretrained(d, safe_serialization=True)
    if ex["naming"] != "saved":   # rewrite with other names; transformers must still load the same model
        sd = {RENAME[ex["naming"]](k): v.contiguous() for k, v in model.state_dict().items()
              if not (ex["tie"] and k == "lm_head.weight")}
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        again = Model.from_pretrained(d, dtype=torch.float32).eval()
        l2, t2, _ = greedy(again, torch.tensor([ids]), torch.from_numpy(pv), N_GREEDY, **kw)
        assert torch.equal(l2, logits) and t2 == toks, f"{ex['naming']} names do not reload to the same model"
    flat.astype("<f4").tofile(os.path.join(d, "pixel_values.f32"))
    ref = dict(input_ids=ids, n_images=len(images), n_image_tokens=n_tok, n_tiles=n_tiles, image_sizes=sizes, image_size=s,
               logits=[float(x) for x in logits], greedy=toks, min_greedy_gap=gap, naming=ex["naming"])
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f)
    print(f"{name}: {len(ids)} ids, image tokens {n_tok}, tiles {n_tiles}, greedy {toks[:6]}..., min gap {gap:.4f}")


# ---- LLaVA-NeXT's image processor ("anyres" tiles) on the image fixtures ----

NEXT_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]   # llava-v1.6's


def next_processor_files(d, size, pins, patch, strategy="default"):
    pre = {"crop_size": {"height": size, "width": size}, "do_center_crop": True, "do_convert_rgb": True,
           "do_normalize": True, "do_pad": True, "do_rescale": True, "do_resize": True,
           "image_grid_pinpoints": pins, "image_mean": [0.48145466, 0.4578275, 0.40821073],
           "image_processor_type": "LlavaNextImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711],
           "processor_class": "LlavaNextProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
           "size": {"shortest_edge": size}}
    proc = {"image_token": "<image>", "num_additional_image_tokens": 1, "patch_size": patch,
            "processor_class": "LlavaNextProcessor", "vision_feature_select_strategy": strategy}
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    with open(os.path.join(d, "processor_config.json"), "w") as f:
        json.dump(proc, f, indent=2)
    return proc


def best_resolution(hw, pins):
    from transformers.image_processing_utils import select_best_resolution
    return select_best_resolution(hw, pins)


def next_token_count(ip, proc, h, w):
    """LlavaNextProcessor's image-token count for an h x w image (its own methods)."""
    import types
    from transformers.models.llava_next.processing_llava_next import LlavaNextProcessor
    ns = types.SimpleNamespace(image_processor=ip, patch_size=proc["patch_size"],
                               num_additional_image_tokens=proc["num_additional_image_tokens"])
    ns._get_unpadded_features = lambda *a: LlavaNextProcessor._get_unpadded_features(ns, *a)
    s = ip.crop_size["height"]
    n = LlavaNextProcessor._get_number_of_features(ns, h, w, s, s)
    return n - 1 if proc["vision_feature_select_strategy"] == "default" else n


def build_next_processor(out):
    import hashlib
    import io
    import lzma as _lzma
    from PIL import ImageOps
    from transformers import AutoImageProcessor
    d = os.path.join(out, "next-processor-336")
    proc = next_processor_files(d, 336, NEXT_PINPOINTS, 14)
    ip = AutoImageProcessor.from_pretrained(d, backend="pil")
    img_dir = os.path.join(os.path.dirname(out), "image")
    with _lzma.open(os.path.join(img_dir, "manifest.json.xz")) as f:
        names = [c["name"] for c in json.load(f)["clip"]]
    refs = []
    for name in names:
        im = ImageOps.exif_transpose(Image.open(io.BytesIO(open(os.path.join(img_dir, name), "rb").read())))
        r = ip(images=[im], return_tensors="np")
        pv = np.ascontiguousarray(r["pixel_values"][0].astype(np.float32))
        h, w = [int(v) for v in r["image_sizes"][0]]
        refs.append({"name": name, "n_tiles": int(pv.shape[0]), "image_size": [h, w],
                     "n_image_tokens": next_token_count(ip, proc, h, w),
                     "sha256": hashlib.sha256(pv.tobytes()).hexdigest()})
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(refs, f, indent=0)
    print(f"next-processor-336: {len(refs)} images, tiles {sorted(set(r['n_tiles'] for r in refs))}")


# ---- the LLaVA-1.5-7B-shaped folder: random bf16 weights without torch ----

def big_shapes(cfg):
    """(name, shape) of every tensor of llava-1.5-7b-hf as published."""
    v, t = cfg["vision_config"], cfg["text_config"]
    d, ff, nl, vocab = t.get("hidden_size", 4096), t.get("intermediate_size", 11008), t.get("num_hidden_layers", 32), t["vocab_size"]
    dv, ffv, nlv, p, s = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"], v["patch_size"], v["image_size"]
    out = [("language_model.model.embed_tokens.weight", (vocab, d)), ("language_model.model.norm.weight", (d,)),
           ("language_model.lm_head.weight", (vocab, d))]
    for i in range(nl):
        pre = f"language_model.model.layers.{i}."
        out += [(pre + "input_layernorm.weight", (d,)), (pre + "post_attention_layernorm.weight", (d,))]
        out += [(pre + f"self_attn.{x}_proj.weight", (d, d)) for x in "qkvo"]
        out += [(pre + "mlp.gate_proj.weight", (ff, d)), (pre + "mlp.up_proj.weight", (ff, d)),
                (pre + "mlp.down_proj.weight", (d, ff))]
    vp = "vision_tower.vision_model."
    out += [(vp + "embeddings.class_embedding", (dv,)), (vp + "embeddings.patch_embedding.weight", (dv, 3, p, p)),
            (vp + "embeddings.position_embedding.weight", ((s // p) ** 2 + 1, dv)),
            (vp + "pre_layrnorm.weight", (dv,)), (vp + "pre_layrnorm.bias", (dv,)),
            (vp + "post_layernorm.weight", (dv,)), (vp + "post_layernorm.bias", (dv,))]
    for i in range(nlv):
        pre = f"{vp}encoder.layers.{i}."
        for ln in ("layer_norm1", "layer_norm2"):
            out += [(pre + ln + ".weight", (dv,)), (pre + ln + ".bias", (dv,))]
        for x in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out += [(pre + f"self_attn.{x}.weight", (dv, dv)), (pre + f"self_attn.{x}.bias", (dv,))]
        out += [(pre + "mlp.fc1.weight", (ffv, dv)), (pre + "mlp.fc1.bias", (ffv,)),
                (pre + "mlp.fc2.weight", (dv, ffv)), (pre + "mlp.fc2.bias", (dv,))]
    out += [("multi_modal_projector.linear_1.weight", (d, dv)), ("multi_modal_projector.linear_1.bias", (d,)),
            ("multi_modal_projector.linear_2.weight", (d, d)), ("multi_modal_projector.linear_2.bias", (d,))]
    return out


def bf16_pool(rng, n, scale):
    """n bf16 values (as uint16) of N(0, scale), rounded to nearest even."""
    f = (rng.standard_normal(n, dtype=np.float32) * scale).view(np.uint32)
    return ((f + 0x7FFF + ((f >> 16) & 1)) >> 16).astype(np.uint16)


def write_big_shard(path, tensors, rng, pool):
    header, off = {}, 0
    for name, shape in tensors:
        nb = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    ones = np.full(1, 0x3F80, np.uint16)   # bf16 1.0
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape in tensors:
            n = int(np.prod(shape))
            if len(shape) == 1 and ("norm" in name):   # norms near 1 so activations stay sane
                f.write((np.resize(ones, n) + (pool[:n] & 0x000F)).astype(np.uint16).tobytes())
                continue
            start = int(rng.integers(0, len(pool) - 1))
            done = 0
            while done < n:   # random windows of a random pool: fast, and no two tensors alike
                k = min(n - done, len(pool) - start)
                f.write(pool[start:start + k].tobytes())
                done += k
                start = int(rng.integers(0, len(pool) // 2))
    return off


def build_big(d, tokenizer):
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(LLAVA):
        shutil.copy(os.path.join(LLAVA, f), d)
    shutil.copy(tokenizer, os.path.join(d, "tokenizer.json"))
    cfg = json.load(open(os.path.join(LLAVA, "config.json")))
    shapes = big_shapes(cfg)
    rng = np.random.default_rng(0)
    pool = bf16_pool(rng, 1 << 24, 0.02)
    shards = [[], [], []]
    for i, (name, shape) in enumerate(shapes):
        shards[min(2, i * 3 // len(shapes))].append((name, shape))
    wmap, total = {}, 0
    for i, part in enumerate(shards):
        fn = f"model-0000{i + 1}-of-00003.safetensors"
        total += write_big_shard(os.path.join(d, fn), part, rng, pool)
        wmap.update({n: fn for n, _ in part})
        print(f"{fn}: {len(part)} tensors", flush=True)
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=1)
    # the prompt the real processor makes for one image (no model needed)
    from transformers import AutoProcessor
    proc = AutoProcessor.from_pretrained(d)
    img = make_image(np.random.default_rng(1), 480, 640)
    img.save(os.path.join(d, "test-640x480.png"))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this image?"}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True)
    inp = proc(text=text, images=[img], return_tensors="np")
    with open(os.path.join(d, "prompt_ref.json"), "w") as f:
        json.dump({"text": text, "input_ids": [int(x) for x in inp["input_ids"][0]]}, f)
    inp["pixel_values"].astype("<f4").tofile(os.path.join(d, "prompt_pixel_values.f32"))
    print(f"big: {total / 1e9:.2f} GB, prompt {inp['input_ids'].shape[1]} ids")


def build_e2e(d, tokenizer, nxt=False):
    """A small random LLaVA 1.5 (or, with nxt, LLaVA-NeXT with llava-v1.6's 336-pixel anyres
    tiles) with the real tokenizer, template, processor and vocabulary (f32, ~20 MB, not
    committed) and transformers' greedy answer to one image + question through
    AutoProcessor.apply_chat_template + generate: for checking `vlm generate` / `vlm serve`."""
    from transformers import (AutoProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaNextConfig,
                              LlavaNextForConditionalGeneration)
    Config, Model = (LlavaNextConfig, LlavaNextForConditionalGeneration) if nxt else (LlavaConfig, LlavaForConditionalGeneration)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(LLAVA):
        if f != "config.json":
            shutil.copy(os.path.join(LLAVA, f), d)
    shutil.copy(tokenizer, os.path.join(d, "tokenizer.json"))
    if nxt:
        next_processor_files(d, 336, NEXT_PINPOINTS, 14)
    torch.manual_seed(7)
    cfg = Config(**(dict(image_grid_pinpoints=NEXT_PINPOINTS) if nxt else {}),
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                           num_attention_heads=2, image_size=336, patch_size=14, projection_dim=16, initializer_range=0.1),
        text_config=dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=32064, max_position_embeddings=4096,
                         rms_norm_eps=1e-5, initializer_range=0.1, bos_token_id=1, eos_token_id=2, pad_token_id=32001),
        image_token_index=32000, pad_token_id=32001, tie_word_embeddings=False)
    model = Model(cfg).eval()
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(d, safe_serialization=True)
    for f in ("generation_config.json", "chat_template.json"):
        shutil.copy(os.path.join(LLAVA, f), d)
    proc = AutoProcessor.from_pretrained(d, backend="pil")
    img = make_image(np.random.default_rng(1), 480, 640)
    img.save(os.path.join(d, "test-640x480.png"))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this image?"}]}]
    inp = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True,
                                   return_tensors="pt", images=[img])
    with torch.no_grad():
        out = model.generate(**inp, max_new_tokens=12, do_sample=False)
    new = out[0, inp["input_ids"].shape[1]:].tolist()
    ref = {"prompt_ids": inp["input_ids"][0].tolist(), "greedy_ids": new,
           "text": proc.tokenizer.decode(new, skip_special_tokens=True)}
    with open(os.path.join(d, "e2e_ref.json"), "w") as f:
        json.dump(ref, f)
    print(f"e2e: prompt {len(ref['prompt_ids'])} ids, greedy {new}, text {ref['text']!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "llava"))
    ap.add_argument("--big", default=None)
    ap.add_argument("--tokenizer", default=None, help="llava-1.5-7b-hf's tokenizer.json (for --big)")
    ap.add_argument("--only", default=None, help="build only this tiny configuration")
    ap.add_argument("--next-processor", action="store_true", help="build only the LLaVA-NeXT processor references")
    ap.add_argument("--e2e", default=None, help="write the small real-vocabulary model for vlm generate/serve to DIR")
    ap.add_argument("--e2e-next", action="store_true", help="with --e2e: a LLaVA-NeXT model")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.e2e:
        build_e2e(a.e2e, a.tokenizer, a.e2e_next)
        return
    if a.next_processor:
        build_next_processor(a.out)
        return
    if a.big:
        build_big(a.big, a.tokenizer)
        return
    for i, (name, vis, txt, ex) in enumerate(CONFIGS):
        if a.only is None or a.only == name:
            build_tiny(a.out, name, vis, txt, ex, seed=300 + i)


if __name__ == "__main__":
    main()
