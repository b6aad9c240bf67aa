#!/usr/bin/env python3
"""make_gemma3_gguf_fixtures.py — a tiny random-weight Gemma3ForCausalLM and the GGUF files
llama.cpp's own converter (convert_hf_to_gguf.py, class Gemma3Model) makes of it, for the Gemma 3
part of tests/test_model_gguf.c.

Writes tests/fixtures/gemma3/gguf-text/ (config.json, model.safetensors in f32, ref.json with the
prompt ids, transformers' next-token logits in float32 and a 16-token greedy continuation) and
tests/fixtures/gguf/gemma3-text-f32.gguf + gemma3-text-q8_0.gguf (the converter's --outtype f32 /
q8_0). The model is shaped so that llama.cpp and transformers compute the same function:
6 layers (llama.cpp's default sliding-window pattern of 6: five local layers, then a global one;
the converter writes no pattern), query_pre_attn_scalar = head_dim (llama.cpp scales by
1/sqrt(head_dim)), no attn_logit_softcapping (the converter refuses it); it has a sliding window
of 4 under a 21-token prompt, linear RoPE scaling on the global layer, final logit soft-capping,
GQA, a tied embedding, and every RMSNorm weight randomised (the converter stores 1 + w). Widths are
multiples of 32 so that Q8_0 takes every matrix. The tokenizer is a 420-piece SentencePiece BPE
trained here (Gemma's kind: byte fallback, no normalisation), as the converter wants
tokenizer.model.

Also writes tests/fixtures/gemma3/quant-proj-64/ (make_gemma3_fixtures.py's format): a tiny
Gemma3ForConditionalGeneration whose text width (64) is a multiple of 32, so that --quantization
q8_0 / q4_k reaches its transposed mm_input_projection_weight (the published fixtures' widths
leave it unquantized), for tests/test_model_gemma3.c.

And tests/fixtures/gguf/gemma3-vlm-f32.gguf + gemma3-vlm-mmproj-f32.gguf: that model converted by
the converter (text file, and --mmproj: Gemma3VisionModel, projector "gemma3", input projection
forced to F16), after the tensors are renamed to the published checkpoints' spelling
("vision_tower.vision_model.*", which the converter expects) and given a 400-piece SentencePiece
tokenizer with <start_of_image> / <end_of_image> / <image_soft_token> at the model's ids 380 /
381 / 390. The converter writes no window pattern, so llama.cpp (and vlm.c on these files) runs
both layers as local ones: the test compares with the safetensors under that layer_types.

Usage: /work/venv/bin/python scripts/make_gemma3_gguf_fixtures.py \
           [--llamacpp /work/llamacpp-src/llama_cpp_python-0.3.36/vendor/llama.cpp]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_gemma3_fixtures import build, greedy, randomise  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "tests/fixtures/gemma3/gguf-text")
OUT = os.path.join(ROOT, "tests/fixtures/gguf")
VOCAB = 420
CONFIG = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=6, num_attention_heads=2,
              num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32, sliding_window=4,
              final_logit_softcapping=5.0, attn_logit_softcapping=None, max_position_embeddings=512,
              rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.08,
              hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
              rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                               "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})


def spm(d, tmp):
    import sentencepiece as sp
    text = ["the river that runs past the old mill rises in the hills to the north",
            "farmers brought wheat and barley in carts, 12345 and 67890",
            "ünïcödé words, naïve café, 日本語のテキスト"] * 30
    with open(os.path.join(tmp, "spm.txt"), "w") as f:
        f.write("\n".join(text))
    sp.SentencePieceTrainer.train(input=os.path.join(tmp, "spm.txt"), model_prefix=os.path.join(d, "tokenizer"),
                                  vocab_size=VOCAB, model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                  bos_id=1, eos_id=2, unk_id=3, pad_id=0, normalization_rule_name="identity",
                                  remove_extra_whitespaces=False, minloglevel=2)
    os.remove(os.path.join(d, "tokenizer.vocab"))


def vlm_gguf(llamacpp, tmp):
    from safetensors.torch import load_file, save_file
    src = os.path.join(ROOT, "tests/fixtures/gemma3/quant-proj-64")
    d = os.path.join(tmp, "vlm")
    os.makedirs(d)
    with open(os.path.join(src, "config.json")) as f, open(os.path.join(d, "config.json"), "w") as g:
        g.write(f.read())
    renamed = {}
    for k, v in load_file(os.path.join(src, "model.safetensors")).items():
        for old, new in (("model.vision_tower.", "vision_tower.vision_model."), ("vision_tower.", "vision_tower.vision_model."),
                         ("model.multi_modal_projector.", "multi_modal_projector.")):
            if k.startswith(old) and not k.startswith("vision_tower.vision_model."):
                k = new + k[len(old):]
                break
        renamed[k] = v.contiguous()
    save_file(renamed, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    import sentencepiece as sp
    with open(os.path.join(tmp, "spm-vlm.txt"), "w") as f:
        f.write("\n".join(["the river that runs past the old mill rises in the hills to the north",
                           "farmers brought wheat and barley in carts, 12345 and 67890"] * 30))
    sp.SentencePieceTrainer.train(input=os.path.join(tmp, "spm-vlm.txt"), model_prefix=os.path.join(d, "tokenizer"),
                                  vocab_size=400, model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                  bos_id=2, eos_id=1, unk_id=3, pad_id=0, normalization_rule_name="identity",
                                  remove_extra_whitespaces=False, minloglevel=2)
    os.remove(os.path.join(d, "tokenizer.vocab"))
    dec = {str(i): {"content": c, "special": True, "lstrip": False, "rstrip": False, "normalized": False,
                    "single_word": False}
           for i, c in [(105, "<start_of_turn>"), (106, "<end_of_turn>"), (380, "<start_of_image>"),
                        (381, "<end_of_image>"), (390, "<image_soft_token>")]}
    json.dump({"added_tokens_decoder": dec, "bos_token": "<bos>", "eos_token": "<eos>", "tokenizer_class": "GemmaTokenizer"},
              open(os.path.join(d, "tokenizer_config.json"), "w"))
    pre = {"image_processor_type": "Gemma3ImageProcessor", "image_seq_length": 4, "image_mean": [0.5] * 3,
           "image_std": [0.5] * 3, "size": {"height": 28, "width": 28}, "resample": 2, "rescale_factor": 1 / 255,
           "do_normalize": True, "do_rescale": True, "do_resize": True, "processor_class": "Gemma3Processor"}
    json.dump(pre, open(os.path.join(d, "preprocessor_config.json"), "w"))
    json.dump({"image_seq_length": 4, "processor_class": "Gemma3Processor"}, open(os.path.join(d, "processor_config.json"), "w"))
    conv = os.path.join(llamacpp, "convert_hf_to_gguf.py")
    for extra, name in (([], "gemma3-vlm-f32.gguf"), (["--mmproj"], "gemma3-vlm-mmproj-f32.gguf")):
        subprocess.run([sys.executable, conv, d, "--outtype", "f32", "--outfile", os.path.join(OUT, name)] + extra,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llamacpp", default="/work/llamacpp-src/llama_cpp_python-0.3.36/vendor/llama.cpp")
    a = ap.parse_args()
    torch.manual_seed(7)
    rng = np.random.default_rng(7)
    cfg = Gemma3TextConfig(**CONFIG)
    cfg._attn_implementation = "eager"
    model = Gemma3ForCausalLM(cfg).eval()
    randomise(model)
    ids = [1] + [int(x) for x in rng.integers(4, VOCAB, 20)]
    logits, toks, gap = greedy(model, dict(input_ids=torch.tensor([ids])), 16)
    os.makedirs(SRC, exist_ok=True)
    model.save_pretrained(SRC, safe_serialization=True)
    if os.path.exists(os.path.join(SRC, "generation_config.json")):
        os.remove(os.path.join(SRC, "generation_config.json"))
    with open(os.path.join(SRC, "ref.json"), "w") as f:
        json.dump(dict(input_ids=ids, logits=[float(x) for x in logits], greedy=toks, min_greedy_gap=gap), f)
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "model")
        os.makedirs(d)
        for n in ("config.json", "model.safetensors"):
            with open(os.path.join(SRC, n), "rb") as s, open(os.path.join(d, n), "wb") as t:
                t.write(s.read())
        spm(d, tmp)
        for ty in ("f32", "q8_0"):
            subprocess.run([sys.executable, os.path.join(a.llamacpp, "convert_hf_to_gguf.py"), d, "--outtype", ty,
                            "--outfile", os.path.join(OUT, f"gemma3-text-{ty}.gguf")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    build(os.path.join(ROOT, "tests/fixtures/gemma3"), "quant-proj-64", "vlm",
          dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
               head_dim=32, query_pre_attn_scalar=32, sliding_window=8,
               layer_types=["sliding_attention", "full_attention"]),
          dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28,
               patch_size=7),
          dict(tie=True, mm_tokens=4, images=[1], published_style=False), 11)
    with tempfile.TemporaryDirectory() as tmp:
        vlm_gguf(a.llamacpp, tmp)
    print(f"gemma3 gguf-text: {len(ids)} ids, |logits| max {float(logits.abs().max()):.2f}, greedy {toks[:6]}..., "
          f"min gap {gap:.4f}")


if __name__ == "__main__":
    main()
