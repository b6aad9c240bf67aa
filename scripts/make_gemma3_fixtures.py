#!/usr/bin/env python3
"""make_gemma3_fixtures.py — tiny random-weight Gemma 3 models (Gemma3ForConditionalGeneration
and the text-only Gemma3ForCausalLM) and their reference outputs from transformers in float32,
for the C parity test tests/test_model_gemma3.c.

Writes tests/fixtures/gemma3/<name>/: config.json, model.safetensors (f32), ref.json
(input_ids, per-image tile counts and image-token counts, next-token logits of the prompt, a
16-token greedy continuation with the KV cache as generate runs it, the smallest top-2 gap of
that continuation) and pixel_values.f32 (the tiles of every image, prompt order).

The configurations cover: one image, two images, an image with pan-and-scan crops (each crop
its own <start_of_image> ... <end_of_image> run), GQA and MHA, tied and untied heads,
query_pre_attn_scalar != head_dim, linear RoPE scaling on the global layers, attention and
final logit soft-capping, prompts several times longer than the sliding window, and a config
rewritten in the published (transformers 4.5x) style: flat rope_theta / rope_local_base_freq /
rope_scaling / sliding_window_pattern instead of rope_parameters / layer_types. transformers
applies final_logit_softcapping in Gemma3ForCausalLM only and attn_logit_softcapping nowhere
(Gemma3Attention does not pass it on); the fixtures set both so that the C side is held to
that. Every RMSNorm
weight and the projector are randomised (transformers initialises them to zero), so a
missing "1 +" or a transposed projection shows in the logits.

Usage: /work/venv/bin/python scripts/make_gemma3_fixtures.py [--out tests/fixtures/gemma3]
"""
import argparse
import json
import os

import numpy as np
import torch
from transformers import (Gemma3Config, Gemma3ForCausalLM, Gemma3ForConditionalGeneration,
                          Gemma3TextConfig)

VOCAB = 400
BOS, EOS, PAD = 2, 1, 0
SOT, NLNL = 105, 108
BOI, EOI, IMAGE = 380, 381, 390
N_GREEDY = 16

TEXT_BASE = dict(vocab_size=VOCAB, max_position_embeddings=2048, rms_norm_eps=1e-6, bos_token_id=BOS,
                 eos_token_id=EOS, pad_token_id=PAD, initializer_range=0.08, hidden_activation="gelu_pytorch_tanh")

# (name, kind, text config, vision config or None, extra)
CONFIGS = [
    ("two-images-gqa-tied", "vlm",
     dict(hidden_size=48, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
          head_dim=16, query_pre_attn_scalar=24, sliding_window=8,
          layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
          rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                           "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}),
     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28,
          patch_size=7),
     dict(tie=True, mm_tokens=4, images=[1, 1], published_style=True, sliding_window_pattern=2)),
    ("pan-scan-mha-untied-softcap", "vlm",
     dict(hidden_size=40, intermediate_size=72, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
          head_dim=20, query_pre_attn_scalar=20, sliding_window=12, attn_logit_softcapping=3.0,
          final_logit_softcapping=4.0,
          layer_types=["sliding_attention", "sliding_attention", "full_attention"]),
     dict(hidden_size=36, intermediate_size=60, num_hidden_layers=2, num_attention_heads=3, image_size=48,
          patch_size=8, layer_norm_eps=1e-5),
     dict(tie=False, mm_tokens=9, images=[3], published_style=False)),
    ("text-causallm-gqa", "text",
     dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1,
          head_dim=32, query_pre_attn_scalar=32, sliding_window=6, final_logit_softcapping=1.5,
          attn_logit_softcapping=2.0, layer_types=["sliding_attention", "sliding_attention", "full_attention"]),
     None,
     dict(tie=True, n_text=40, published_style=False)),
]


def randomise(model):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1 or "mm_input_projection_weight" in n:
                p.copy_(torch.randn_like(p) * 0.3)


def greedy(model, kw, n):
    """Prompt logits and an n-token greedy continuation with the KV cache (as generate does)."""
    with torch.no_grad():
        out = model(**kw, use_cache=True)
        logits0 = out.logits[0, -1].clone()
        cache, toks, nxt, gaps = out.past_key_values, [], int(torch.argmax(out.logits[0, -1])), []
        for _ in range(n):
            toks.append(nxt)
            o = model(input_ids=torch.tensor([[nxt]]), past_key_values=cache, use_cache=True)
            cache = o.past_key_values
            top2 = torch.topk(o.logits[0, -1], 2).values
            gaps.append(float(top2[0] - top2[1]))
            nxt = int(torch.argmax(o.logits[0, -1]))
    return logits0, toks, min(gaps)


def image_run(mm):
    return [NLNL, BOI] + [IMAGE] * mm + [EOI, NLNL]


def to_published_style(d, ex):
    """Rewrites text_config the way google/gemma-3-*-it's config.json spells it."""
    p = os.path.join(d, "config.json")
    cfg = json.load(open(p))
    t = cfg["text_config"]
    rp = t.pop("rope_parameters")
    t.pop("layer_types")
    t.pop("_sliding_window_pattern", None)
    t["rope_theta"] = rp["full_attention"]["rope_theta"]
    t["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
    t["rope_scaling"] = {"factor": rp["full_attention"]["factor"], "rope_type": rp["full_attention"]["rope_type"]}
    t["sliding_window_pattern"] = ex["sliding_window_pattern"]
    json.dump(cfg, open(p, "w"), indent=2)


def build(out, name, kind, txt, vis, ex, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    tcfg = dict(TEXT_BASE, **txt, tie_word_embeddings=ex["tie"])
    if kind == "vlm":
        cfg = Gemma3Config(text_config=tcfg,
                           vision_config=dict(vis, model_type="siglip_vision_model", vision_use_head=False),
                           mm_tokens_per_image=ex["mm_tokens"], boi_token_index=BOI, eoi_token_index=EOI,
                           image_token_index=IMAGE, tie_word_embeddings=ex["tie"], eos_token_id=[EOS, 106])
        cfg._attn_implementation = "eager"
        model = Gemma3ForConditionalGeneration(cfg).eval()
    else:
        cfg = Gemma3TextConfig(**tcfg)
        cfg._attn_implementation = "eager"
        model = Gemma3ForCausalLM(cfg).eval()
    randomise(model)
    mm = ex.get("mm_tokens", 0)
    ids, n_tiles, n_img, pv = [BOS, SOT] + list(rng.integers(3, 300, 3)), [], [], []
    if kind == "vlm":
        size = vis["image_size"]
        for i, tiles in enumerate(ex["images"]):
            ids += list(rng.integers(3, 300, 4))
            if tiles == 1:
                ids += image_run(mm)
            else:   # pan-and-scan: "Here is the original image" run, a sentence, then one run per crop
                ids += list(rng.integers(3, 300, 4)) + image_run(mm) + list(rng.integers(3, 300, 9))
                for c in range(tiles - 1):
                    ids += image_run(mm)
            n_tiles.append(tiles)
            n_img.append(tiles * mm)
            pv.append(rng.uniform(-1, 1, size=(tiles, 3, size, size)).astype(np.float32))
        ids += list(rng.integers(3, 300, 6))
    else:
        ids += list(rng.integers(3, 300, ex["n_text"]))
    input_ids = torch.tensor([ids])
    kw = dict(input_ids=input_ids)
    if kind == "vlm":
        pvs = np.concatenate(pv)
        kw["pixel_values"] = torch.from_numpy(pvs)
        kw["token_type_ids"] = (input_ids == IMAGE).long()
        pvs.astype("<f4").tofile(os.path.join(d, "pixel_values.f32"))
    logits, toks, gap = greedy(model, kw, N_GREEDY)
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    if ex["published_style"]:   # the same model read back from the published spelling
        to_published_style(d, ex)
        cls = Gemma3ForConditionalGeneration if kind == "vlm" else Gemma3ForCausalLM
        again = cls.from_pretrained(d, attn_implementation="eager").eval()
        l2, t2, _ = greedy(again, kw, N_GREEDY)
        assert torch.equal(l2, logits) and t2 == toks, "published-style config reads differently"
    ref = dict(input_ids=[int(t) for t in ids], n_tiles=n_tiles, n_image_tokens=n_img,
               tile_size=vis["image_size"] if vis else 0, logits=[float(x) for x in logits], greedy=toks,
               min_greedy_gap=gap, sliding_window=txt["sliding_window"])
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f)
    print(f"{name}: {len(ids)} ids, tiles {n_tiles}, |logits| max {float(logits.abs().max()):.2f}, "
          f"greedy {toks[:6]}..., min gap {gap:.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/gemma3")
    a = ap.parse_args()
    for i, (name, kind, txt, vis, ex) in enumerate(CONFIGS):
        build(a.out, name, kind, txt, vis, ex, 1000 + i)


if __name__ == "__main__":
    main()
