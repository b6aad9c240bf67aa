#!/usr/bin/env python3
"""make_gemma3_fixtures.py — tiny random-weight Gemma 3 models (Gemma3ForConditionalGeneration
and the text-only Gemma3ForCausalLM) and their reference outputs from transformers in float32 (one also with bf16 weights),
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

With --big DIR it instead writes a model of google/gemma-3-4b-it's shapes (its config as
published: the 4B values, the rest left to transformers' defaults; the real tokenizer and chat
template from /work/shared/tokenizers/gemma3; the published preprocessor and processor configs)
with random bf16 weights, written tensor by tensor with numpy (~8.6 GB; not committed: run it
under flock /work/big.lock into /work/models-big and delete the folder afterwards).

Usage: /work/venv/bin/python scripts/make_gemma3_fixtures.py [--out tests/fixtures/gemma3]
       /work/venv/bin/python scripts/make_gemma3_fixtures.py --big /work/models-big/gemma3-4b-random
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
     dict(tie=True, mm_tokens=4, images=[1, 1], published_style=True, sliding_window_pattern=2, bf16=True)),
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
    if ex.get("bf16"):   # bf16 weights; reference = f32 math on the rounded weights with the
        # embedding scale rounded to bf16 as transformers' bf16 model holds it
        d2 = d + "-bf16"
        os.makedirs(d2, exist_ok=True)
        m2 = type(model)(model.config).eval()
        m2.load_state_dict({k: v.to(torch.bfloat16).to(torch.float32) for k, v in model.state_dict().items()})
        emb = m2.get_input_embeddings()
        with torch.no_grad():
            emb.embed_scale.fill_(float(torch.tensor(emb.scalar_embed_scale).to(torch.bfloat16)))
        l2, t2, g2 = greedy(m2, kw, N_GREEDY)
        m2.to(torch.bfloat16).save_pretrained(d2, safe_serialization=True)
        if os.path.exists(os.path.join(d2, "generation_config.json")):
            os.remove(os.path.join(d2, "generation_config.json"))
        if kind == "vlm":
            pvs.astype("<f4").tofile(os.path.join(d2, "pixel_values.f32"))
        ref.update(logits=[float(x) for x in l2], greedy=t2, min_greedy_gap=g2, dtype="bf16",
                   logits_f32_model=[float(x) for x in logits])
        with open(os.path.join(d2, "ref.json"), "w") as f:
            json.dump(ref, f)
        print(f"{name}-bf16: greedy {t2[:6]}..., min gap {g2:.4f}, "
              f"vs f32 model {float((l2 - logits).abs().max()):.4f}")


# google/gemma-3-4b-it's config.json as published (fields it leaves out take transformers'
# defaults: vocab 262208, 8 heads / 4 kv heads of 256, query_pre_attn_scalar 256,
# rope_local_base_freq 10000, rope_theta 1e6, sliding_window_pattern 6).
BIG_CONFIG = {
    "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
    "eos_token_id": [1, 106], "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256,
    "model_type": "gemma3",
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                    "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
    "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
    "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                      "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 27,
                      "patch_size": 14, "vision_use_head": False},
}
BIG_PREPROCESSOR = {
    "do_convert_rgb": None, "do_normalize": True, "do_pan_and_scan": None, "do_rescale": True, "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "Gemma3ImageProcessor", "image_seq_length": 256,
    "image_std": [0.5, 0.5, 0.5], "pan_and_scan_max_num_crops": None, "pan_and_scan_min_crop_size": None,
    "pan_and_scan_min_ratio_to_activate": None, "processor_class": "Gemma3Processor", "resample": 2,
    "rescale_factor": 0.00392156862745098, "size": {"height": 896, "width": 896},
}
BIG_GENERATION = {"bos_token_id": 2, "cache_implementation": "hybrid", "do_sample": True, "eos_token_id": [1, 106],
                  "pad_token_id": 0, "top_k": 64, "top_p": 0.95}


def big_tensors():
    """(name, shape) of every tensor of the 4B model, in the published names."""
    t = dict(vocab=262208, d=2560, ff=10240, layers=34, q=8 * 256, kv=4 * 256, hd=256)
    out = [("language_model.model.embed_tokens.weight", (t["vocab"], t["d"])),
           ("language_model.model.norm.weight", (t["d"],))]
    for i in range(t["layers"]):
        p = f"language_model.model.layers.{i}."
        out += [(p + n, (t["d"],)) for n in ("input_layernorm.weight", "post_attention_layernorm.weight",
                                             "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight")]
        out += [(p + "self_attn.q_norm.weight", (t["hd"],)), (p + "self_attn.k_norm.weight", (t["hd"],)),
                (p + "self_attn.q_proj.weight", (t["q"], t["d"])), (p + "self_attn.k_proj.weight", (t["kv"], t["d"])),
                (p + "self_attn.v_proj.weight", (t["kv"], t["d"])), (p + "self_attn.o_proj.weight", (t["d"], t["q"])),
                (p + "mlp.gate_proj.weight", (t["ff"], t["d"])), (p + "mlp.up_proj.weight", (t["ff"], t["d"])),
                (p + "mlp.down_proj.weight", (t["d"], t["ff"]))]
    v = dict(d=1152, ff=4304, layers=27, p=14, n=(896 // 14) ** 2)
    pre = "vision_tower.vision_model."
    out += [(pre + "embeddings.patch_embedding.weight", (v["d"], 3, v["p"], v["p"])),
            (pre + "embeddings.patch_embedding.bias", (v["d"],)),
            (pre + "embeddings.position_embedding.weight", (v["n"], v["d"])),
            (pre + "post_layernorm.weight", (v["d"],)), (pre + "post_layernorm.bias", (v["d"],))]
    for i in range(v["layers"]):
        p = f"{pre}encoder.layers.{i}."
        for n in ("layer_norm1", "layer_norm2"):
            out += [(p + n + ".weight", (v["d"],)), (p + n + ".bias", (v["d"],))]
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out += [(p + "self_attn." + n + ".weight", (v["d"], v["d"])), (p + "self_attn." + n + ".bias", (v["d"],))]
        out += [(p + "mlp.fc1.weight", (v["ff"], v["d"])), (p + "mlp.fc1.bias", (v["ff"],)),
                (p + "mlp.fc2.weight", (v["d"], v["ff"])), (p + "mlp.fc2.bias", (v["d"],))]
    out += [("multi_modal_projector.mm_input_projection_weight", (v["d"], t["d"])),
            ("multi_modal_projector.mm_soft_emb_norm.weight", (v["d"],))]
    return out


def build_big(d, seed=0):
    """Random bf16 weights (normal, std 0.02; norms around 0), written without torch."""
    import lzma
    import shutil
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(1 << 26, dtype=np.float32) * 0.02).view(np.uint32)
    pool = ((pool + 0x7FFF + ((pool >> 16) & 1)) >> 16).astype(np.uint16)   # f32 -> bf16, nearest-even
    tensors = big_tensors()
    header, off = {}, 0
    for name, shape in tensors:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for name, shape in tensors:
            n, o = int(np.prod(shape)), int(rng.integers(0, pool.size))
            while n > 0:   # slices of the random pool from a random start, wrapping
                m = min(n, pool.size - o)
                f.write(pool[o:o + m].astype("<u2").tobytes())
                n, o = n - m, 0
    json.dump(BIG_CONFIG, open(os.path.join(d, "config.json"), "w"), indent=2)
    json.dump(BIG_PREPROCESSOR, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=2)
    json.dump({"image_seq_length": 256, "processor_class": "Gemma3Processor"},
              open(os.path.join(d, "processor_config.json"), "w"), indent=2)
    json.dump(BIG_GENERATION, open(os.path.join(d, "generation_config.json"), "w"), indent=2)
    tok = "/work/shared/tokenizers/gemma3"
    with lzma.open(os.path.join(tok, "tokenizer.json.xz")) as src, open(os.path.join(d, "tokenizer.json"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    shutil.copy(os.path.join(tok, "tokenizer_config.json"), d)
    print(f"big: {len(tensors)} tensors, {off / 1e9:.2f} GB in {d}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/gemma3")
    ap.add_argument("--big")
    a = ap.parse_args()
    if a.big:
        build_big(a.big)
        return
    for i, (name, kind, txt, vis, ex) in enumerate(CONFIGS):
        build(a.out, name, kind, txt, vis, ex, 1000 + i)


if __name__ == "__main__":
    main()
