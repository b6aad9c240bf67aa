#!/usr/bin/env python3
"""make_gguf_fixtures.py — GGUF files written by llama.cpp's own converter, for the GGUF tests.

For each tiny Idefics3 fixture named below (tests/fixtures/models/<name>, made by
make_model_fixtures.py) it writes tests/fixtures/gguf/<name>-<type>.gguf (the text model) and
<name>-mmproj-<type>.gguf (the vision tower + projector) for type f32 and f16 (NAMES) or q8_0
(NAMES_Q8), by running
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

Also writes fuzz/regressions/gguf/*.gguf: one small file per class of GGUF reader bug that
llama.cpp and Ollama have had CVEs for (huge tensor/metadata counts, a string length that
overflows, a tensor offset past the end, a misaligned offset, dimensions whose product
overflows, an unknown type, ...), each of which the reader must refuse with an error naming the
file and offset (tests/test_gguf.c checks the message), and fuzz/corpus/gguf/ seeds.

Needs llama.cpp's source (the llama-cpp-python sdist, unpacked). Usage:
  /work/venv/bin/python scripts/make_gguf_fixtures.py \
      [--llamacpp /work/llamacpp-src/x/llama_cpp_python-0.3.36/vendor/llama.cpp]
"""
import argparse
import struct
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
# Q8_0 needs rows that are multiples of 32: this fixture's widths all are (the converter keeps
# the others, and the vision embeddings, in f16/f32 as it does for real models).
NAMES_Q8 = ["split-gqa-untied"]
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


REG = os.path.join(ROOT, "fuzz/regressions/gguf")
CORPUS = os.path.join(ROOT, "fuzz/corpus/gguf")


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv_u32(k, v):
    return gstr(k) + struct.pack("<II", 4, v)


def kv_str(k, v):
    return gstr(k) + struct.pack("<I", 8) + gstr(v)


def tinfo(name, dims, ty, off):
    return gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ty, off)


def gguf(kvs, tensors, data=b"", n_t=None, n_kv=None, version=3, align=32):
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_t is None else n_t, len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tensors)
    if tensors:
        body += b"\0" * ((align - len(body) % align) % align)
    return body + data


def regressions():
    """name -> (bytes, substring the error must hold)."""
    arch = kv_str("general.architecture", "llama")
    ok_t = tinfo("a", [8], 0, 0)
    f32x8 = struct.pack("<8f", *range(8))
    return {
        "ok-minimal": (gguf([arch], [ok_t], f32x8), ""),
        "huge-n-tensors": (gguf([arch], [ok_t], f32x8, n_t=(1 << 63) + 5), "tensor count"),
        "huge-n-kv": (gguf([arch], [ok_t], f32x8, n_kv=0xFFFFFFFFFFFFFFFF), "metadata count"),
        "string-len-overflow": (gguf([gstr("k") + struct.pack("<I", 8) + struct.pack("<Q", 0xFFFFFFFFFFFFFFF0) + b"x"], [], b""), "length"),
        "key-len-past-end": (gguf([struct.pack("<Q", 1000) + b"general"], [], b""), "truncated"),
        "array-count-overflow": (gguf([gstr("a") + struct.pack("<IIQ", 9, 6, 0x4000000000000001)], []), "array"),
        "array-of-strings-past-end": (gguf([gstr("a") + struct.pack("<IIQ", 9, 8, 3) + gstr("x") + struct.pack("<Q", 99)], []), "truncated"),
        "nested-array": (gguf([gstr("a") + struct.pack("<IIQ", 9, 9, 1) + struct.pack("<IQ", 4, 0)], []), "nested"),
        "unknown-value-type": (gguf([gstr("k") + struct.pack("<II", 13, 0)], []), "value type"),
        "bool-not-0-1": (gguf([gstr("k") + struct.pack("<IB", 7, 2)], []), "bool"),
        "duplicate-key": (gguf([arch, arch], [ok_t], f32x8), "twice"),
        "duplicate-tensor": (gguf([arch], [ok_t, tinfo("a", [8], 0, 32)], f32x8 * 2), "twice"),
        "offset-past-end": (gguf([arch], [tinfo("a", [8], 0, 1 << 40)], f32x8), "past the end"),
        "offset-plus-size-wraps": (gguf([arch], [tinfo("a", [8], 0, 0xFFFFFFFFFFFFFFE0)], f32x8), "past the end"),
        "misaligned-offset": (gguf([arch], [tinfo("a", [4], 0, 4)], f32x8), "alignment"),
        "bad-alignment": (gguf([arch, kv_u32("general.alignment", 24)], [ok_t], f32x8, align=24), "alignment"),
        "zero-alignment": (gguf([arch, kv_u32("general.alignment", 0)], [ok_t], f32x8), "alignment"),
        "dims-overflow": (gguf([arch], [tinfo("a", [1 << 32, 1 << 32, 1 << 32], 0, 0)], f32x8), "overflow"),
        "dim-above-int64": (gguf([arch], [tinfo("a", [1 << 63], 0, 0)], f32x8), "overflow"),
        "zero-dims": (gguf([arch], [tinfo("a", [], 0, 0)], f32x8), "dimensions"),
        "five-dims": (gguf([arch], [tinfo("a", [1, 1, 1, 1, 8], 0, 0)], f32x8), "dimensions"),
        "unknown-tensor-type": (gguf([arch], [tinfo("a", [8], 99, 0)], f32x8), "unknown type"),
        "row-not-block-multiple": (gguf([arch], [tinfo("a", [33], 8, 0)], b"\0" * 64), "block"),
        "overlapping-tensors": (gguf([arch], [ok_t, tinfo("b", [8], 0, 0)], f32x8), "overlap"),
        "truncated-data": (gguf([arch], [tinfo("a", [16], 0, 0)], f32x8), "past the end"),
        "version-1": (gguf([arch], [], version=1), "version"),
        "big-endian": (gguf([arch], [], version=3 << 24), "big-endian"),
        "bad-magic": (b"GGUG" + gguf([arch], [])[4:], "magic"),
        "nul-in-key": (gguf([gstr("a\0b") + struct.pack("<II", 4, 1)], []), "NUL"),
    }


def write_regressions():
    os.makedirs(REG, exist_ok=True)
    os.makedirs(CORPUS, exist_ok=True)
    with open(os.path.join(REG, "expect.txt"), "w") as f:
        for name, (data, want) in regressions().items():
            with open(os.path.join(REG, name + ".gguf"), "wb") as g:
                g.write(data)
            f.write(f"{name}.gguf\t{want}\n")
    for name in ["padded-tile-f16.gguf", "padded-tile-mmproj-f16.gguf"]:
        shutil.copy(os.path.join(OUT, name), CORPUS)
    with open(os.path.join(CORPUS, "minimal.gguf"), "wb") as g:
        g.write(regressions()["ok-minimal"][0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--regressions-only", action="store_true")
    ap.add_argument("--llamacpp", default="/work/llamacpp-src/x/llama_cpp_python-0.3.36/vendor/llama.cpp")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if a.regressions_only:
        write_regressions()
        return
    refs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in NAMES + NAMES_Q8:
            d = os.path.join(tmp, name)
            tok = prepare(os.path.join(MODELS, name), d)
            if name in NAMES:
                refs = tokenizer_refs(tok)
            for ty in (["f32", "f16"] if name in NAMES else ["q8_0"]):
                convert(a.llamacpp, "smollm", [d, "--outtype", ty, "--outfile", os.path.join(OUT, f"{name}-{ty}.gguf")])
                convert(a.llamacpp, "smollm", [d, "--mmproj", "--outtype", ty,
                                               "--outfile", os.path.join(OUT, f"{name}-mmproj-{ty}.gguf")])
        with open(os.path.join(OUT, "tiny-tokenizer.json"), "w") as f:
            json.dump(refs, f, indent=1, ensure_ascii=False)
        smolvlm_vocab(a.llamacpp, tmp)
    write_regressions()


if __name__ == "__main__":
    main()
