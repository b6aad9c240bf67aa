#!/usr/bin/env python3
"""Writes tests/fixtures/server/tiny-mllama: a tiny random-weight MllamaForConditionalGeneration
folder with the real Llama 3.2 Vision chat template, a small byte-level BPE tokenizer holding
Llama 3's special tokens and <|image|> (the last id, past lm_head as in the real model), and an
MllamaImageProcessor config with 28-px tiles, for the server's end-to-end tests of the
cross-attention family. Its answers are meaningless but deterministic.

  /work/venv/bin/python scripts/make_mllama_server_fixture.py
"""
import json
import os
import shutil

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, MllamaConfig, MllamaForConditionalGeneration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "server", "tiny-mllama")
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
           "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>"]
CORPUS = ["user", "assistant", "system", "Cutting Knowledge Date: December 2023", "Today Date: 26 Jul 2024",
          "What is shown in the image?", "Describe both images.", "Hello, how are you?", "The answer is",
          "a red circle and a blue square on a white background", "one two three four five six seven"]


def main():
    torch.manual_seed(0)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 20, trainer=trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens(["<|image|>"])
    n = tok.get_vocab_size()
    image_id = tok.token_to_id("<|image|>")
    assert image_id == n - 1
    os.makedirs(OUT, exist_ok=True)
    tok.save(os.path.join(OUT, "tokenizer.json"))
    tid = tok.token_to_id
    cfg = MllamaConfig(
        vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_global_layers=1,
                           attention_heads=2, image_size=28, patch_size=14, max_num_tiles=4,
                           intermediate_layers_indices=[0], vision_output_dim=64),
        text_config=dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, cross_attention_layers=[1], vocab_size=image_id,
                         max_position_embeddings=2048, rms_norm_eps=1e-5, bos_token_id=tid("<|begin_of_text|>"),
                         eos_token_id=[tid("<|end_of_text|>"), tid("<|eom_id|>"), tid("<|eot_id|>")],
                         pad_token_id=tid("<|finetune_right_pad_id|>"),
                         rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                              high_freq_factor=4.0, original_max_position_embeddings=64)),
        image_token_index=image_id)
    model = MllamaForConditionalGeneration(cfg).float()
    with torch.no_grad():   # gates open, larger logits: clear-cut greedy picks
        for name, p in model.named_parameters():
            if "gate" in name and p.numel() == 1:
                p.fill_(0.8)
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(OUT, safe_serialization=True)
    GenerationConfig(bos_token_id=tid("<|begin_of_text|>"), eos_token_id=[tid("<|eot_id|>"), tid("<|eom_id|>")],
                     pad_token_id=tid("<|finetune_right_pad_id|>"), do_sample=False).save_pretrained(OUT)
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump(dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|finetune_right_pad_id|>",
                       model_max_length=2048, tokenizer_class="PreTrainedTokenizerFast", clean_up_tokenization_spaces=True),
                  f, indent=2)
    shutil.copy(os.path.join(ROOT, "tests/fixtures/templates/llama32_vision/chat_template.jinja"), OUT)
    with open(os.path.join(OUT, "preprocessor_config.json"), "w") as f:
        json.dump(dict(do_convert_rgb=True, do_normalize=True, do_pad=True, do_rescale=True, do_resize=True,
                       image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
                       image_processor_type="MllamaImageProcessor", max_image_tiles=4, processor_class="MllamaProcessor",
                       resample=2, rescale_factor=1 / 255, size=dict(height=28, width=28)), f, indent=2)
    print("wrote", OUT, sum(p.numel() for p in model.parameters()), "parameters, vocab", n)


if __name__ == "__main__":
    main()
