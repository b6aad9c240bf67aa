#!/usr/bin/env python3
"""Tokenizer encoding speed: vlm.c vs Hugging Face `tokenizers` (Rust), single thread, on the
same ~10 MB of mixed text (one document per line), in one run.

Usage: python scripts/bench_tokenizer.py [--vlm build/vlm] [--tokenizer llama3] [--mb 10]
Prints tokens/s for both and the ratio; fails if the total id counts differ.
"""
import argparse, json, lzma, os, random, subprocess, sys, tempfile, time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import tokenizers  # noqa: E402  (after the thread settings)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

WORDS = ("the of and to in is was for that with as on by at from his an were are which this be "
         "model image text token vision language inference server request response kernel matrix "
         "attention layer weight cache batch sequence position embedding decoder encoder output "
         "international organization government development information university community "
         "however although because therefore meanwhile nevertheless approximately").split()
CODE = ["def forward(self, x):\n", "    return torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d)",
        "for (int i = 0; i < n; ++i) { acc += a[i] * b[i]; }", "if (rc != VLM_OK) return rc;",
        "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hi\"}]}"]
OTHER = ["机器学习模型可以理解图像和文本。", "日本語の文章も少し含めます。", "Привет, как дела?",
         "مرحبا بالعالم", "😀 🚀 👨‍👩‍👧", "Ça coûte 12,50 € — très cher!", "Straße, Größe, Übung"]


def make_text(mb, seed=7):
    r = random.Random(seed)
    lines, size = [], 0
    while size < mb * 1_000_000:
        parts = []
        for _ in range(r.randint(5, 40)):
            k = r.random()
            if k < 0.80:
                s = " ".join(r.choice(WORDS) for _ in range(r.randint(3, 15)))
                parts.append(s.capitalize() + r.choice([".", ",", "!", "?", ";", ":"]))
            elif k < 0.88:
                parts.append(r.choice(CODE).replace("\n", " "))
            elif k < 0.95:
                parts.append(r.choice(OTHER))
            else:
                parts.append(str(r.randint(0, 10 ** r.randint(1, 9))) + r.choice(["%", " km", "", ".5"]))
        line = " ".join(parts)
        lines.append(line)
        size += len(line.encode()) + 1
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vlm", default=os.path.join(ROOT, "build", "vlm"))
    ap.add_argument("--tokenizer", default="llama3")
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vlm-bench-tok-")
    src = os.path.join(ROOT, "tests", "fixtures", "tokenizers", a.tokenizer, "tokenizer.json.xz")
    tok_path = os.path.join(tmp, "tokenizer.json")
    with open(tok_path, "wb") as f:
        f.write(lzma.open(src).read())
    text = make_text(a.mb)
    text_path = os.path.join(tmp, "text.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        f.write(text)
    docs = text.split("\n")

    tok = tokenizers.Tokenizer.from_file(tok_path)
    # encode_batch (with offsets) and, where this tokenizers has it, encode_batch_fast (no
    # offsets): the faster of the two is HF's figure. Parallelism is off (see the env above).
    variants = ["encode_batch"] + (["encode_batch_fast"] if hasattr(tok, "encode_batch_fast") else [])
    cmd = [a.vlm, "bench-tokenizer", "--tokenizer", tok_path, "--file", text_path, "--repeat", "1"]
    best, hf_tokens, hf_variant, v = None, 0, "", None
    for _ in range(a.repeat):   # interleaved, so both see the same machine load; best of each
        for name in variants:
            t0 = time.perf_counter()
            encs = getattr(tok, name)(docs)
            dt = time.perf_counter() - t0
            hf_tokens = sum(len(e.ids) for e in encs)
            if best is None or dt < best:
                best, hf_variant = dt, name
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        run = json.loads(out.strip().splitlines()[-1])
        if v is None or run["seconds"] < v["seconds"]:
            v = run
    hf_tps = hf_tokens / best
    print(f"text: {len(text.encode()) / 1e6:.1f} MB, {len(docs)} documents, tokenizer {a.tokenizer}, single thread")
    print(f"HF tokenizers {tokenizers.__version__} ({hf_variant}): {hf_tokens} tokens in {best:.3f} s = {hf_tps:,.0f} tokens/s")
    print(f"vlm.c:                {v['tokens']} tokens in {v['seconds']:.3f} s = {v['tokens_per_s']:,.0f} tokens/s")
    print(f"ratio vlm/HF: {v['tokens_per_s'] / hf_tps:.2f}x")
    if v["tokens"] != hf_tokens:
        print(f"FAIL: token counts differ ({v['tokens']} vs {hf_tokens})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
