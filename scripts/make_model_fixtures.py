#!/usr/bin/env python3
"""make_model_fixtures.py — tiny random-weight Idefics3 (SmolVLM) models and their reference
outputs from Hugging Face transformers, for the C parity tests (tests/test_model.c).

Writes tests/fixtures/models/<name>/ for each configuration below: config.json,
generation_config.json, model.safetensors (f32, or bf16 for the *-bf16 variants),
preprocessor_config.json, processor_config.json, and ref.json + pixel_values.f32 +
pixel_mask.u8 (input_ids, per-image tile counts, next-token logits of the prompt, a 16-token
greedy continuation). Configurations cover image splitting on and off, GQA and not, tied and
untied embeddings, odd hidden sizes, two images in one prompt, and a padded tile (a partial
pixel_attention_mask, the patch-position bucketing path).

With --big DIR it also writes a model of the exact shapes of SmolVLM-256M-Instruct (its real
config, processor files, chat template and tokenizer; random bf16 weights) plus a reference for
one 512x512 image without splitting. That folder is ~0.5 GB and is not committed.

Usage: /work/venv/bin/python scripts/make_model_fixtures.py [--out tests/fixtures/models]
       [--big /work/models-big/smolvlm-256m-random]
"""
import argparse, copy
import json
import lzma
import os
import shutil

import numpy as np
import torch
from PIL import Image
from transformers import Idefics3Config, Idefics3ForConditionalGeneration
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

SHARED = "/work/shared"
SMOLVLM = f"{SHARED}/models/HuggingFaceTB--SmolVLM-256M-Instruct"

# Tiny configurations: (name, vision, text, extra)
CONFIGS = [
    ("split-gqa-untied",
     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=4),
     dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
          rope_theta=100000.0),
     dict(tie=False, split=True, images=[(40, 56)], scale_factor=2, bf16=True)),
    ("nosplit-mha-tied",
     dict(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8),
     dict(hidden_size=48, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
          rope_theta=10000.0),
     dict(tie=True, split=False, images=[(50, 30)], scale_factor=2, bf16=False)),
    ("odd-two-images",
     dict(hidden_size=36, intermediate_size=70, num_hidden_layers=2, num_attention_heads=3, image_size=48, patch_size=8,
          hidden_act="gelu_pytorch_tanh"),
     dict(hidden_size=40, intermediate_size=72, num_hidden_layers=2, num_attention_heads=5, num_key_value_heads=1,
          rope_theta=100000.0),
     dict(tie=False, split=True, images=[(60, 100), (90, 40)], scale_factor=3, bf16=False)),
    ("padded-tile",
     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=4),
     dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
          rope_theta=100000.0),
     dict(tie=True, split=False, images=[(32, 32)], scale_factor=2, bf16=False, pad_to=(20, 28))),
    ("rope-llama3",
     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
     dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
          rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                               high_freq_factor=4.0, original_max_position_embeddings=16)),
     dict(tie=True, split=False, images=[(30, 30)], scale_factor=2, bf16=False)),
    ("rope-linear",
     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
     dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
          rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=4.0)),
     dict(tie=False, split=False, images=[(30, 30)], scale_factor=2, bf16=False)),
]

VOCAB = 320
IMAGE_TOKEN = 300
FAKE, GLOBAL, ROWCOL0 = 301, 302, 303
BOS, NL = 1, 10
N_GREEDY = 16


def make_image(rng, h, w):
    """A smooth colourful test image (random noise would make the resize path trivial)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 120 * np.sin(x / max(w, 1) * 6.0 + rng.uniform(0, 3))
    g = 127 + 120 * np.cos(y / max(h, 1) * 5.0 + rng.uniform(0, 3))
    b = 127 + 120 * np.sin((x + y) / (h + w) * 7.0)
    a = np.stack([r, g, b], -1) + rng.normal(0, 10, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def image_prompt_ids(rows, cols, seq):
    """Token ids shaped like Idefics3Processor's expansion of one image (small-vocab stand-ins)."""
    ids = []
    if rows == 0 and cols == 0:
        return [FAKE, GLOBAL] + [IMAGE_TOKEN] * seq + [FAKE]
    for r in range(rows):
        for c in range(cols):
            ids += [FAKE, ROWCOL0 + r * 6 + c] + [IMAGE_TOKEN] * seq
        ids.append(NL)
    ids += [NL, FAKE, GLOBAL] + [IMAGE_TOKEN] * seq + [FAKE]
    return ids


def greedy(model, input_ids, pixel_values, pixel_mask, n):
    """Prompt logits and an n-token greedy continuation with the KV cache (as generate does)."""
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixel_values, pixel_attention_mask=pixel_mask, use_cache=True)
        logits0 = out.logits[0, -1].clone()
        past, toks, nxt = out.past_key_values, [], int(torch.argmax(out.logits[0, -1]))
        gaps = []
        for _ in range(n):
            toks.append(nxt)
            o = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = o.past_key_values
            top2 = torch.topk(o.logits[0, -1], 2).values
            gaps.append(float(top2[0] - top2[1]))
            nxt = int(torch.argmax(o.logits[0, -1]))
    return logits0, toks, min(gaps)


def bf16_run_logits(model, input_ids, pixel_values, pixel_mask):
    """Prompt logits of the model computed in bfloat16 by transformers (what --dtype auto
    approximates: bf16 products; transformers also rounds every activation to bf16)."""
    mb = copy.deepcopy(model).to(torch.bfloat16)
    with torch.no_grad():
        out = mb(input_ids=input_ids, pixel_values=pixel_values.to(torch.bfloat16), pixel_attention_mask=pixel_mask)
    return [float(x) for x in out.logits[0, -1].float()]


def write_ref(d, input_ids, pv, pm, n_tiles, n_image_tokens, logits, toks, extra):
    pv.astype("<f4").tofile(os.path.join(d, "pixel_values.f32"))
    pm.astype(np.uint8).tofile(os.path.join(d, "pixel_mask.u8"))
    ref = dict(input_ids=[int(t) for t in input_ids], n_tiles=n_tiles, n_image_tokens=n_image_tokens,
               tile_height=int(pv.shape[-2]), tile_width=int(pv.shape[-1]),
               logits=[float(x) for x in logits], greedy=toks, **extra)
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f)


def build_tiny(out, name, vis, txt, ex, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = Idefics3Config(
        vision_config=dict(vis, initializer_range=0.1),
        text_config=dict(txt, model_type="llama", vocab_size=VOCAB, max_position_embeddings=1024,
                         initializer_range=0.1, rms_norm_eps=1e-5, tie_word_embeddings=ex["tie"],
                         bos_token_id=BOS, eos_token_id=2, pad_token_id=0),
        image_token_id=IMAGE_TOKEN, scale_factor=ex["scale_factor"], tie_word_embeddings=ex["tie"])
    model = Idefics3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():   # non-trivial norms so that a wrong weight shows in the logits
        for n_, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
    img_size = vis["image_size"]
    ip = Idefics3ImageProcessorPil(size={"longest_edge": 2 * img_size}, max_image_size={"longest_edge": img_size},
                                   do_image_splitting=ex["split"], resample=1)
    images = [make_image(rng, h, w) for h, w in ex["images"]]
    proc = ip([images], return_tensors="np", return_row_col_info=True)
    pv, pm = proc["pixel_values"][0], proc["pixel_attention_mask"][0]   # (tiles, 3, H, W), (tiles, H, W)
    if "pad_to" in ex:   # one padded tile: real pixels only in the top-left corner, zeros elsewhere
        ph, pw = ex["pad_to"]
        pm = np.zeros_like(pm)
        pm[:, :ph, :pw] = 1
        pv = pv * pm[:, None, :, :]
    seq = (img_size // vis["patch_size"]) ** 2 // ex["scale_factor"] ** 2
    ids, n_tiles, n_img_tok = [BOS] + list(rng.integers(3, 250, 5)), [], []
    for i in range(len(images)):
        r, c = proc["rows"][0][i], proc["cols"][0][i]
        nt = r * c + 1 if r or c else 1
        n_tiles.append(int(nt))
        n_img_tok.append(int(nt * seq))
        ids += image_prompt_ids(r, c, seq) + list(rng.integers(3, 250, 3))
    ids += list(rng.integers(3, 250, 4))
    input_ids = torch.tensor([ids])
    variants = [("", torch.float32)] + ([("-bf16", torch.bfloat16)] if ex["bf16"] else [])
    ref_logits = None
    for suffix, dtype in variants:
        d = os.path.join(out, name + suffix)
        os.makedirs(d, exist_ok=True)
        m = model
        if dtype == torch.bfloat16:   # reference = f32 math on the bf16-rounded weights
            m = Idefics3ForConditionalGeneration(cfg).eval()
            m.load_state_dict({k: v.to(torch.bfloat16).to(torch.float32) for k, v in model.state_dict().items()})
        logits, toks, gap = greedy(m, input_ids, torch.from_numpy(pv)[None], torch.from_numpy(pm)[None].bool(), N_GREEDY)
        extra = dict(dtype="bf16" if dtype == torch.bfloat16 else "f32", min_greedy_gap=gap)
        if ref_logits is not None:
            extra["logits_f32_model"] = [float(x) for x in ref_logits]
        if dtype == torch.bfloat16:
            extra["logits_bf16_run"] = bf16_run_logits(m, input_ids, torch.from_numpy(pv)[None],
                                                       torch.from_numpy(pm)[None].bool())
        else:
            ref_logits = logits
        m.to(dtype).save_pretrained(d, safe_serialization=True)
        m.to(torch.float32)
        ip.to_json_file(os.path.join(d, "preprocessor_config.json"))
        with open(os.path.join(d, "processor_config.json"), "w") as f:
            json.dump({"image_seq_len": seq, "processor_class": "Idefics3Processor"}, f)
        write_ref(d, ids, pv, pm, n_tiles, n_img_tok, logits, toks, extra)
        print(f"{name}{suffix}: {len(ids)} ids, tiles {n_tiles}, greedy {toks[:6]}..., min gap {gap:.4f}")


def build_big(d, seed=0):
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(SMOLVLM):
        shutil.copy(os.path.join(SMOLVLM, f), d)
    with lzma.open(f"{SHARED}/tokenizers/smolvlm/tokenizer.json.xz") as src, open(os.path.join(d, "tokenizer.json"), "wb") as dst:
        dst.write(src.read())
    from transformers import AutoProcessor
    cfg = Idefics3Config.from_pretrained(d)
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(cfg).eval().to(torch.bfloat16)
    model.save_pretrained(d, safe_serialization=True)
    for f in ("config.json", "generation_config.json"):   # keep the real files, not the re-saved ones
        shutil.copy(os.path.join(SMOLVLM, f), d)
    # reference from the saved file in f32 (not model.to(float32): .to(bfloat16) also rounded
    # the rotary inv_freq buffer, which the saved model does not carry)
    model = Idefics3ForConditionalGeneration.from_pretrained(d, dtype=torch.float32).eval()
    proc = AutoProcessor.from_pretrained(d)
    rng = np.random.default_rng(seed)
    img = make_image(rng, 512, 512)
    img.save(os.path.join(d, "test-512.png"))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True)
    inp = proc(text=text, images=[[img]], return_tensors="pt", do_image_splitting=False)
    logits, toks, gap = greedy(model, inp["input_ids"], inp["pixel_values"], inp["pixel_attention_mask"], N_GREEDY)
    pv, pm = inp["pixel_values"][0].numpy(), inp["pixel_attention_mask"][0].numpy()
    seq = int((cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2 // cfg.scale_factor ** 2)
    write_ref(d, inp["input_ids"][0].tolist(), pv, pm, [int(pv.shape[0])], [int(pv.shape[0] * seq)], logits, toks,
              dict(dtype="bf16", min_greedy_gap=gap, prompt_text=text, do_image_splitting=False,
                   logits_bf16_run=bf16_run_logits(model, inp["input_ids"], inp["pixel_values"],
                                                   inp["pixel_attention_mask"])))
    print(f"big: {inp['input_ids'].shape[1]} ids, tiles {pv.shape[0]}, greedy {toks[:6]}..., min gap {gap:.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "models"))
    ap.add_argument("--big", default=None)
    ap.add_argument("--only-big", action="store_true")
    ap.add_argument("--only", default=None, help="build only this tiny configuration")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if not a.only_big:
        for i, (name, vis, txt, ex) in enumerate(CONFIGS):
            if a.only is None or a.only == name:
                build_tiny(a.out, name, vis, txt, ex, seed=100 + i)
    if a.big:
        build_big(a.big)


if __name__ == "__main__":
    main()
