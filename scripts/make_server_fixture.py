#!/usr/bin/env python3
"""Writes tests/fixtures/server/tiny-vlm: a tiny random-weight Idefics3 (SmolVLM-family) model
folder with the demo model's tokenizer and chat template and image splitting on, for the
server's end-to-end tests when the trained demo model (models/vlm-demo) is not there. Its
answers are meaningless but deterministic, which is all the protocol tests need.

  /work/venv/bin/python scripts/make_server_fixture.py
"""
import os
import sys

import torch
from transformers import (GenerationConfig, Idefics3Config, Idefics3ForConditionalGeneration,
                          Idefics3ImageProcessor, Idefics3Processor)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_demo as td  # noqa: E402  (tokenizer recipe and chat template of the demo model)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "server", "tiny-vlm")
IMAGE, PATCH, SCALE = 64, 16, 2


def main():
    torch.manual_seed(0)
    tok = td.build_tokenizer()
    improc = Idefics3ImageProcessor(
        do_convert_rgb=True, do_resize=True, size={"longest_edge": 2 * IMAGE}, resample=1, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_pad=True,
        do_image_splitting=True, max_image_size={"longest_edge": IMAGE})
    seq = (IMAGE // PATCH) ** 2 // SCALE ** 2
    proc = Idefics3Processor(improc, tok, image_seq_len=seq, chat_template=td.SMOLVLM_TEMPLATE)
    tid = tok.convert_tokens_to_ids
    cfg = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=IMAGE, patch_size=PATCH),
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, max_position_embeddings=1024, rope_theta=10000.0,
                         rms_norm_eps=1e-5, hidden_act="silu", vocab_size=len(tok), bos_token_id=tid("<|im_start|>"),
                         eos_token_id=tid("<end_of_utterance>"), pad_token_id=tid("<|im_end|>"),
                         tie_word_embeddings=False, model_type="llama"),
        scale_factor=SCALE, image_token_id=tid("<image>"), tie_word_embeddings=False, pad_token_id=tid("<|im_end|>"))
    model = Idefics3ForConditionalGeneration(cfg).float()
    with torch.no_grad():   # larger logits than the default init, so greedy picks are clear-cut
        model.lm_head.weight.mul_(8.0)
    td.write_folder(OUT, model, proc)
    GenerationConfig(bos_token_id=tid("<|im_start|>"), eos_token_id=tid("<end_of_utterance>"),
                     pad_token_id=tid("<|im_end|>"), do_sample=False).save_pretrained(OUT)
    print("wrote", OUT, sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
