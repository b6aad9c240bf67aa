#!/usr/bin/env python3
"""make_gguf_write_fixtures.py — fixtures for `vlm quantize` (tests/test_gguf_export.c).

tests/fixtures/gguf-write/tokenizer/: the tiny byte-level BPE tokenizer + SmolVLM chat template
that make_gguf_fixtures.py gave llama.cpp's converter when it wrote tests/fixtures/gguf/padded-tile-*
(same function, same output), so `vlm quantize` on padded-tile + these files can be compared with
the converter's files byte for byte.
tests/fixtures/gguf-write/padded-tile-<type>.gguf: llama.cpp's own llama-quantize run on the
converter's padded-tile-f32.gguf (q8_0, q4_0, q4_k_m, q5_k_m): the per-tensor type mix, fallbacks
included, and the quantized bytes.
tests/fixtures/gguf-write/padded-tile-conv-<type>.gguf and padded-tile-mmproj-conv-<type>.gguf: the
converter's own --outtype bf16 and q8_0 files (text and mmproj), the types tests/fixtures/gguf
does not hold.

Usage: /work/venv/bin/python scripts/make_gguf_write_fixtures.py [--llama-quantize PATH]
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import make_gguf_fixtures  # noqa: E402

OUT = os.path.join(ROOT, "tests/fixtures/gguf-write")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-quantize", default="/work/llamacpp-build/bin/llama-quantize")
    ap.add_argument("--llamacpp", default="/work/llamacpp-src/llama_cpp_python-0.3.36/vendor/llama.cpp")
    a = ap.parse_args()
    tok = os.path.join(OUT, "tokenizer")
    os.makedirs(tok, exist_ok=True)
    make_gguf_fixtures.tiny_tokenizer(tok)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "padded-tile")
        make_gguf_fixtures.prepare(os.path.join(make_gguf_fixtures.MODELS, "padded-tile"), d)
        for ty in ["bf16", "q8_0"]:
            make_gguf_fixtures.convert(a.llamacpp, "smollm", [d, "--outtype", ty, "--outfile", os.path.join(OUT, f"padded-tile-conv-{ty}.gguf")])
            make_gguf_fixtures.convert(a.llamacpp, "smollm", [d, "--mmproj", "--outtype", ty,
                                                             "--outfile", os.path.join(OUT, f"padded-tile-mmproj-conv-{ty}.gguf")])
    src = os.path.join(ROOT, "tests/fixtures/gguf/padded-tile-f32.gguf")
    for ty in ["q8_0", "q4_0", "q4_k_m", "q5_k_m"]:
        subprocess.run([a.llama_quantize, src, os.path.join(OUT, f"padded-tile-{ty}.gguf"), ty.upper(), "1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
