#!/usr/bin/env python3
"""make_mllama_model_fixtures.py — tiny random-weight MllamaForConditionalGeneration (Llama 3.2
Vision) models and their reference outputs from Hugging Face transformers, for the C parity
test tests/test_model_mllama.c.

Writes tests/fixtures/models/mllama-<name>/: config.json, generation_config.json,
model.safetensors (f32), and ref.json + case<k>.pixels.f32 for each prompt case: input_ids, the
processor's aspect_ratio_ids / aspect_ratio_mask / cross_attention_mask (MllamaImageProcessorPil
and processing_mllama's mask functions, as MllamaProcessor calls them), the logits of every
prompt position, and a 16-token greedy continuation made by transformers' generate. Only the
valid tiles' pixels are stored (padded tiles are zeros, which the script checks).

Configurations cover one and two images, consecutive images, 1/2/4-tile aspect ratios, GQA
and MHA, text before the first image, a text-only prompt, and tie_word_embeddings true and
false (Mllama's lm_head is never tied: its embedding has vocab + 8 rows).

Usage: /work/venv/bin/python scripts/make_mllama_model_fixtures.py [--out tests/fixtures/models]
"""
import argparse
import json
import os

import numpy as np
import torch
from PIL import Image
from transformers import MllamaConfig, MllamaForConditionalGeneration
from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil
from transformers.models.mllama.processing_mllama import (convert_sparse_cross_attention_mask_to_dense,
                                                          get_cross_attention_token_mask)

VOCAB = 320
IMG = VOCAB          # <|image|> is vocab_size, as in the real model (128256): an embedding row past lm_head
BOS, EOS, PAD = 1, 2, 0
N_GREEDY = 16

# (name, vision, text, tie, cases); a case is (prefix text tokens, [(image h, w) or "T" for text], ...)
CONFIGS = [
    ("gqa-untied",
     dict(hidden_size=24, intermediate_size=48, num_hidden_layers=4, num_global_layers=2, attention_heads=2,
          image_size=28, patch_size=7, max_num_tiles=4, intermediate_layers_indices=[1, 3], vision_output_dim=72),
     dict(hidden_size=48, intermediate_size=64, num_hidden_layers=5, num_attention_heads=4, num_key_value_heads=2,
          cross_attention_layers=[1, 3],
          rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                               high_freq_factor=4.0, original_max_position_embeddings=16)),
     False,
     [["T4", (20, 100), "T6"],                     # text before the image; 4 tiles (1x4)
      ["T5"],                                      # text only
      ["T1", (30, 60), "T3", (20, 24), "T4"]]),    # two images: 2 tiles, then 1 tile
    ("mha-tied-two-images",
     dict(hidden_size=24, intermediate_size=40, num_hidden_layers=3, num_global_layers=1, attention_heads=3,
          image_size=21, patch_size=7, max_num_tiles=4, intermediate_layers_indices=[0, 2], vision_output_dim=72),
     dict(hidden_size=48, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
          cross_attention_layers=[0, 2], rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
     True,
     [["T1", (30, 30), "T3", (15, 40), "T5"],      # 4 tiles (2x2), then 2 tiles
      ["T3", (18, 18), "T4"]]),                    # 1 tile
    ("consecutive-2tiles",
     dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_global_layers=1, attention_heads=4,
          image_size=14, patch_size=7, max_num_tiles=2, supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]],
          intermediate_layers_indices=[0], vision_output_dim=64),
     dict(hidden_size=40, intermediate_size=72, num_hidden_layers=3, num_attention_heads=5, num_key_value_heads=1,
          cross_attention_layers=[1], rope_parameters=dict(rope_type="default", rope_theta=100000.0)),
     False,
     [["T2", (20, 10), (12, 12), "T6"],            # two consecutive images: 2 tiles (2x1), 1 tile
      ["T1", (9, 30), "T7"]]),                     # 1x2 tiles
]


def make_image(rng, h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 120 * np.sin(x / max(w, 1) * 6.0 + rng.uniform(0, 3))
    g = 127 + 120 * np.cos(y / max(h, 1) * 5.0 + rng.uniform(0, 3))
    b = 127 + 120 * np.sin((x + y) / (h + w) * 7.0)
    a = np.stack([r, g, b], -1) + rng.normal(0, 10, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def build(out, name, vis, txt, tie, cases, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = MllamaConfig(
        vision_config=dict(vis, initializer_range=0.1),
        text_config=dict(txt, vocab_size=VOCAB, max_position_embeddings=1024, initializer_range=0.1,
                         rms_norm_eps=1e-5, tie_word_embeddings=tie, bos_token_id=BOS, eos_token_id=EOS,
                         pad_token_id=PAD),
        image_token_index=IMG, tie_word_embeddings=tie)
    model = MllamaForConditionalGeneration(cfg).eval()
    model.generation_config.eos_token_id = None   # 16 tokens of plain argmax, EOS included
    with torch.no_grad():   # gates and norms away from their neutral init, so that each path shows
        for n_, p in model.named_parameters():
            if "gate" in n_ and p.numel() == 1:
                p.copy_(torch.empty_like(p).uniform_(0.3, 1.2) * (1 if rng.random() < 0.7 else -1))
            elif p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
    d = os.path.join(out, "mllama-" + name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    ip = MllamaImageProcessorPil(size={"height": vis["image_size"], "width": vis["image_size"]},
                                 max_image_tiles=vis["max_num_tiles"])
    T = vis["max_num_tiles"]
    refs = []
    for k, case in enumerate(cases):
        ids, images = [BOS], []
        for part in case:
            if isinstance(part, str):
                ids += [int(t) for t in rng.integers(3, 250, int(part[1:]))]
            else:
                ids.append(IMG)
                images.append(make_image(rng, *part))
        kw = {}
        ref = dict(input_ids=ids, n_images=len(images))
        if images:
            p = ip([images], return_tensors="np")
            pv, ar_ids, ar_mask = p["pixel_values"], p["aspect_ratio_ids"], p["aspect_ratio_mask"]
            n_tiles = [int(x) for x in ar_mask[0].sum(-1)]
            spans = get_cross_attention_token_mask(ids, IMG)
            cam = convert_sparse_cross_attention_mask_to_dense([spans], [n_tiles], T, len(ids))
            for i, nt in enumerate(n_tiles):
                assert not pv[0, i, nt:].any(), "padded tiles must be zeros"
            np.concatenate([pv[0, i, :nt].reshape(-1) for i, nt in enumerate(n_tiles)]).astype("<f4").tofile(
                os.path.join(d, f"case{k}.pixels.f32"))
            kw = dict(pixel_values=torch.from_numpy(pv), aspect_ratio_ids=torch.from_numpy(ar_ids),
                      aspect_ratio_mask=torch.from_numpy(ar_mask), cross_attention_mask=torch.from_numpy(cam))
            ref.update(n_tiles=n_tiles, aspect_ratio_ids=[int(x) for x in ar_ids[0]],
                       tile_size=int(pv.shape[-1]),
                       cross_attention_mask=[[[int(v) for v in img] for img in row] for row in cam[0]])
        input_ids = torch.tensor([ids])
        with torch.no_grad():
            o = model(input_ids=input_ids, **kw)
            g = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                               max_new_tokens=N_GREEDY, output_scores=True,
                               return_dict_in_generate=True, pad_token_id=PAD, **kw)
        toks = [int(t) for t in g.sequences[0, len(ids):]]
        gaps = [float((lambda s: s[0] - s[1])(torch.topk(sc[0], 2).values)) for sc in g.scores]
        ref.update(logits=[[round(float(x), 6) for x in row] for row in o.logits[0]], greedy=toks,
                   min_greedy_gap=min(gaps))
        refs.append(ref)
        print(f"{name} case{k}: {len(ids)} ids, {len(images)} images {ref.get('n_tiles')}, greedy {toks[:6]}..., "
              f"min gap {min(gaps):.4f}")
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(dict(cases=refs, vocab=VOCAB, image_token_id=IMG), f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/models")
    a = ap.parse_args()
    for i, (name, vis, txt, tie, cases) in enumerate(CONFIGS):
        build(a.out, name, vis, txt, tie, cases, 1000 + i)


if __name__ == "__main__":
    main()
