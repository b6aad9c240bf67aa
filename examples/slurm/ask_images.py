#!/usr/bin/env python3
"""ask_images.py — sends every image of a folder to an OpenAI-compatible server (vlm serve, or
vLLM) with the official `openai` client and writes one JSON line per image:
{"file", "question", "answer", "latency_s"} (or "error"). Exit status 1 if any image failed.

  python3 ask_images.py --base-url http://node:8000/v1 --images DIR [--question Q]
         [--file-urls] [--out answers.jsonl] [--max-tokens N]

--file-urls sends file:// URLs (the server must run with --allowed-local-media-path DIR);
otherwise each image travels as a base64 data: URL.
"""
import argparse
import base64
import json
import mimetypes
import os
import sys
import time

from openai import OpenAI

EXTS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


def image_url(path, file_urls):
    if file_urls:
        return "file://" + os.path.abspath(path)
    mime = mimetypes.guess_type(path)[0] or "image/png"
    with open(path, "rb") as f:
        return f"data:{mime};base64," + base64.b64encode(f.read()).decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--question", default="What is shown in the image?")
    ap.add_argument("--file-urls", action="store_true")
    ap.add_argument("--out", default="-")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--api-key", default=os.environ.get("VLLM_API_KEY", "EMPTY"))
    a = ap.parse_args()
    client = OpenAI(base_url=a.base_url, api_key=a.api_key, max_retries=2, timeout=600)
    model = client.models.list().data[0].id
    files = sorted(f for f in os.listdir(a.images) if f.lower().endswith(EXTS))
    out = sys.stdout if a.out == "-" else open(a.out, "w")
    failed = 0
    for name in files:
        path = os.path.join(a.images, name)
        row = {"file": name, "question": a.question}
        t0 = time.monotonic()
        try:
            r = client.chat.completions.create(
                model=model, temperature=0, max_tokens=a.max_tokens,
                messages=[{"role": "user", "content": [
                    {"type": "text", "text": a.question},
                    {"type": "image_url", "image_url": {"url": image_url(path, a.file_urls)}}]}])
            row["answer"] = r.choices[0].message.content
        except Exception as e:  # one line per image, failures included
            row["error"] = f"{type(e).__name__}: {e}"
            failed += 1
        row["latency_s"] = round(time.monotonic() - t0, 3)
        out.write(json.dumps(row) + "\n")
        out.flush()
    if out is not sys.stdout:
        out.close()
    print(f"{len(files) - failed} of {len(files)} images answered", file=sys.stderr)
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main())
