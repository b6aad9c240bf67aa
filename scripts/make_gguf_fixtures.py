#!/usr/bin/env python3
"""make_gguf_fixtures.py — GGUF files written by llama.cpp's own converter, for the GGUF tests.

For each tiny Idefics3 fixture named below (tests/fixtures/models/<name>, made by
make_model_fixtures.py) it writes tests/fixtures/gguf/<name>-<type>.gguf (the text model) and
<name>-mmproj-<type>.gguf (the vision tower + projector) for type f32 and f16, by running
llama.cpp's convert_hf_to_gguf.py on a copy of the folder with
  - text_config.architectures = ["VLlama3ForCausalLM"] (the converter accepts no other), and
  - a tiny byte-level BPE tokenizer of the fixture's 320 ids (SmolVLM's pre-tokenizer: digits
    split, then GPT-2 byte level; "<image>" at the fixture's image token id 300) with SmolVLM's
    chat template. The converter recognises a pre-tokenizer by hashing the ids it gives on a
    test text; this tokenizer is not a published one, so the script tells it "smollm", the name
    of the same pre-tokenizer steps.
Also writes tiny-tokenizer.json: texts and the ids HF `tokenizers` gives for them with this
tokenizer, and smolvlm-vocab.gguf.xz: the real SmolVLM-256M tokenizer + chat template as the
converter writes them (--vocab-only), for the tokenizer parity test on the shared corpus.

Needs llama.cpp's source (the llama-cpp-python sdist, unpacked). Usage:
  /work/venv/bin/python scripts/make_gguf_fixtures.py \
      [--llamacpp /work/llamacpp-src/x/llama_cpp_python-0.3.36/vendor/llama.cpp]
"""
import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests/fixtures/models")
OUT = os.path.join(ROOT, "tests/fixtures/gguf")
SHARED = "/work/shared"
SMOLVLM = f"{SHARED}/models/HuggingFaceTB--SmolVLM-256M-Instruct"
NAMES = ["padded-tile", "rope-linear"]
VOCAB, IMAGE, FAKE, GLOBAL, ROWCOL0 = 320, 300, 301, 302, 303

# Runs the converter with the pre-tokenizer name given instead of detected.
RUNNER = r"""
import sys
sys.path.insert(0, sys.argv[1])
import convert_hf_to_gguf as c
from conversion import base
pre = sys.argv[2]
if pre != "-":
    base.TextModel.get_vocab_base_pre = lambda self, tok: pre
sys.argv = ["convert_hf_to_gguf.py"] + sys.argv[3:]
c.main()
"""


def tiny_tokenizer(dst):
    """A 320-id byte-level BPE: 256 byte tokens, merges up to id 299, added tokens from 300."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    text = ["the cat sat on the mat with a red ball and a blue box",
            "User: what colour is the shape? Assistant: it is a green triangle",
            "images show circles squares and triangles of many colours"] * 20
    trainer = trainers.BpeTrainer(vocab_size=IMAGE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False)
    tok.train_from_iterator(text, trainer)
    assert tok.get_vocab_size() <= IMAGE, tok.get_vocab_size()
    pad = [f"<pad_{i}>" for i in range(tok.get_vocab_size(), IMAGE)]
    tok.add_tokens(pad)
    from tokenizers import AddedToken
    extra = ["<image>", "<fake_token_around_image>", "<global-img>"]
    extra += [f"<row_{r}_col_{c}>" for r in range(1, 4) for c in range(1, 4)]
    extra += ["<end_of_utterance>"]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in extra])
    tok.add_tokens([AddedToken(t, normalized=False) for t in ["Assistant:", "<plain_added>"]])
    n = tok.get_vocab_size()
    tok.add_tokens([f"<spare_{i}>" for i in range(n, VOCAB)])
    assert tok.get_vocab_size() == VOCAB and tok.token_to_id("<image>") == IMAGE
    tok.save(os.path.join(dst, "tokenizer.json"))
    with open(os.path.join(dst, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|im_start|>",
                   "eos_token": "<end_of_utterance>", "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>",
                   "add_prefix_space": False, "model_max_length": 8192}, f, indent=1)
    shutil.copy(f"{SMOLVLM}/chat_template.jinja", dst)
    return tok


def tokenizer_refs(tok):
    texts = ["Hello world", "the cat sat on the mat 12345", "User:<image>What is it?<end_of_utterance>\nAssistant:",
             "  leading spaces and\ttabs\n\nnewlines", "ünïcödé 日本語 🙂", "<plain_added> and <row_2_col_3>",
             "<fake_token_around_image><global-img><image><image><fake_token_around_image>"]
    return [{"text": t, "ids": tok.encode(t).ids} for t in texts]


def convert(llamacpp, pre, args):
    subprocess.run([sys.executable, "-c", RUNNER, llamacpp, pre] + args, check=True,
                   stdout=subprocess.DEVNULL)


def prepare(src, dst):
    shutil.copytree(src, dst)
    cfg = json.load(open(os.path.join(dst, "config.json")))
    cfg["text_config"]["architectures"] = ["VLlama3ForCausalLM"]
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=1)
    return tiny_tokenizer(dst)


def smolvlm_vocab(llamacpp, tmp):
    d = os.path.join(tmp, "smolvlm")
    os.makedirs(d)
    for f in ["config.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
              "chat_template.jinja", "chat_template.json", "generation_config.json", "preprocessor_config.json",
              "processor_config.json"]:
        if os.path.exists(f"{SMOLVLM}/{f}"):
            shutil.copy(f"{SMOLVLM}/{f}", d)
    with lzma.open(f"{SHARED}/tokenizers/smolvlm/tokenizer.json.xz") as f, open(f"{d}/tokenizer.json", "wb") as g:
        g.write(f.read())
    cfg = json.load(open(f"{d}/config.json"))
    cfg["text_config"]["architectures"] = ["VLlama3ForCausalLM"]
    json.dump(cfg, open(f"{d}/config.json", "w"))
    out = os.path.join(tmp, "smolvlm-vocab.gguf")
    convert(llamacpp, "-", [d, "--vocab-only", "--outfile", out])
    with open(out, "rb") as f, lzma.open(os.path.join(OUT, "smolvlm-vocab.gguf.xz"), "wb", preset=9) as g:
        g.write(f.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llamacpp", default="/work/llamacpp-src/x/llama_cpp_python-0.3.36/vendor/llama.cpp")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    refs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in NAMES:
            d = os.path.join(tmp, name)
            tok = prepare(os.path.join(MODELS, name), d)
            refs = tokenizer_refs(tok)
            for ty in ["f32", "f16"]:
                convert(a.llamacpp, "smollm", [d, "--outtype", ty, "--outfile", os.path.join(OUT, f"{name}-{ty}.gguf")])
                convert(a.llamacpp, "smollm", [d, "--mmproj", "--outtype", ty,
                                               "--outfile", os.path.join(OUT, f"{name}-mmproj-{ty}.gguf")])
        with open(os.path.join(OUT, "tiny-tokenizer.json"), "w") as f:
            json.dump(refs, f, indent=1, ensure_ascii=False)
        smolvlm_vocab(a.llamacpp, tmp)


if __name__ == "__main__":
    main()
