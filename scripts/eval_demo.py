#!/usr/bin/env python3
"""Measures the demo model (issue 6): exact-match accuracy on freshly generated scenes, through
transformers (greedy) and/or a running `vlm serve` (OpenAI client, temperature 0, base64 PNG data
URLs), and how often the two give the same answer.

  eval_demo.py --seed 2026 --count 300 --model models/vlm-demo                      # transformers
  eval_demo.py --seed 2026 --count 300 --server http://127.0.0.1:8000/v1            # vlm serve
  eval_demo.py --seed 2026 --count 300 --model models/vlm-demo --server URL         # both + agreement

Exact match ignores case, surrounding spaces and the final period. Every applicable question of a
scene is asked (the yes/no type once with a present and once with an absent shape). Each request
carries the text first and the image second, as in the README's openai snippet. Exit status 1 when
--min-overall / --min-type / --min-agreement are given and not met.
"""
import argparse
import base64
import io
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_scenes as ds  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def png_bytes(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class HFAnswerer:
    """Greedy answers from transformers, one request at a time (the reference for the C engine)."""

    def __init__(self, folder, threads):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
        torch.set_num_threads(threads)
        self.torch = torch
        self.proc = AutoProcessor.from_pretrained(folder)
        self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()

    def __call__(self, img, question, max_tokens):
        return self.batch([img], [question], max_tokens)[0]

    def batch(self, imgs, questions, max_tokens):
        """Greedy answers for several requests at once (left padding; RoPE makes the padded rows'
        scores the same up to rounding, --batch 1 gives the strict one-request reference)."""
        prompts = [self.proc.apply_chat_template(
            [{"role": "user", "content": [{"type": "text", "text": q}, {"type": "image"}]}],
            add_generation_prompt=True) for q in questions]
        self.proc.tokenizer.padding_side = "left"
        enc = self.proc(text=prompts, images=[[im] for im in imgs], return_tensors="pt", padding=True)
        with self.torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=max_tokens, do_sample=False)
        return self.proc.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


class ServerAnswerer:
    """Answers from an OpenAI-compatible server (vlm serve) at temperature 0."""

    def __init__(self, base_url, model, api_key):
        from openai import OpenAI
        self.client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY")
        self.model = model or self.client.models.list().data[0].id

    def __call__(self, png, question, max_tokens):
        data = base64.b64encode(png).decode("utf-8")
        messages = [{"role": "user", "content": [
            {"type": "text", "text": question},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]}]
        r = self.client.chat.completions.create(model=self.model, messages=messages, temperature=0,
                                                max_tokens=max_tokens)
        return r.choices[0].message.content or ""


def summarize(rows, key):
    per = {}
    for r in rows:
        per.setdefault(r["type"], []).append(ds.normalize_answer(r[key]) == ds.normalize_answer(r["answer"]))
    allv = [v for vs in per.values() for v in vs]
    return {"overall": sum(allv) / len(allv), "n": len(allv),
            "per_type": {t: {"acc": sum(v) / len(v), "n": len(v)} for t, v in sorted(per.items())}}


def print_summary(name, s):
    print(f"{name}: exact match {s['overall'] * 100:.2f}% of {s['n']} questions")
    for t, v in s["per_type"].items():
        print(f"  {t:9s} {v['acc'] * 100:6.2f}%  (n={v['n']})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2026, help="scene stream (training used seed 1)")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--model", help="model folder for transformers (greedy)")
    ap.add_argument("--server", help="OpenAI base URL of a running server, e.g. http://127.0.0.1:8000/v1")
    ap.add_argument("--served-model-name", help="model name for the server (default: first of /v1/models)")
    ap.add_argument("--api-key", default=os.environ.get("VLM_API_KEY", ""))
    ap.add_argument("--concurrency", type=int, default=4, help="parallel server requests")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1, help="transformers requests per generate call")
    ap.add_argument("--json", help="write every question and answer here")
    ap.add_argument("--hf-json", help="take the transformers answers from an earlier --json of the same scenes")
    ap.add_argument("--min-overall", type=float)
    ap.add_argument("--min-type", type=float)
    ap.add_argument("--min-agreement", type=float)
    ap.add_argument("--show-errors", type=int, default=10)
    a = ap.parse_args()
    if not a.model and not a.server and not a.hf_json:
        ap.error("give --model, --server or both")

    rows, pngs, imgs = [], [], []
    for i in range(a.count):
        _, img, qs = ds.scene(a.seed, i)
        imgs.append(img)
        pngs.append(png_bytes(img))
        for t, q, ans in qs:
            rows.append({"scene": i, "type": t, "question": q, "answer": ans})

    failed = False
    results = {}
    if a.hf_json:
        with open(a.hf_json) as f:
            prev = json.load(f)
        assert prev["seed"] == a.seed and prev["count"] == a.count, "--hf-json is of other scenes"
        for r, p in zip(rows, prev["rows"], strict=True):
            assert r["question"] == p["question"] and r["scene"] == p["scene"]
            r["hf"] = p["hf"]
        results["transformers"] = summarize(rows, "hf")
    elif a.model:
        hf = HFAnswerer(a.model, a.threads)
        t0 = time.time()
        for k in range(0, len(rows), a.batch):
            part = rows[k:k + a.batch]
            for r, ans in zip(part, hf.batch([imgs[r["scene"]] for r in part], [r["question"] for r in part],
                                             a.max_tokens)):
                r["hf"] = ans
        print(f"transformers: {len(rows)} answers in {time.time() - t0:.1f}s")
        results["transformers"] = summarize(rows, "hf")
    if a.server:
        sv = ServerAnswerer(a.server, a.served_model_name, a.api_key)
        t0 = time.time()
        with ThreadPoolExecutor(a.concurrency) as ex:
            answers = list(ex.map(lambda r: sv(pngs[r["scene"]], r["question"], a.max_tokens), rows))
        for r, s in zip(rows, answers):
            r["server"] = s
        print(f"server: {len(rows)} answers in {time.time() - t0:.1f}s")
        results["server"] = summarize(rows, "server")
    for name, s in results.items():
        print_summary(name, s)
        if a.min_overall is not None and s["overall"] < a.min_overall:
            failed = True
        if a.min_type is not None and any(v["acc"] < a.min_type for v in s["per_type"].values()):
            failed = True
    for name, s in results.items():
        key = "hf" if name == "transformers" else "server"
        bad = [r for r in rows if ds.normalize_answer(r[key]) != ds.normalize_answer(r["answer"])]
        for r in bad[:a.show_errors]:
            print(f"  wrong ({name}) scene {r['scene']}: {r['question']!r} expected {r['answer']!r} got {r[key]!r}")
    if "transformers" in results and a.server:
        same = sum(r["hf"] == r["server"] for r in rows)
        agree = same / len(rows)
        results["agreement"] = agree
        print(f"agreement (server answer == transformers greedy answer, exact string): "
              f"{agree * 100:.2f}% of {len(rows)}")
        for r in [r for r in rows if r["hf"] != r["server"]][:a.show_errors]:
            print(f"  differ scene {r['scene']}: {r['question']!r} hf {r['hf']!r} server {r['server']!r}")
        if a.min_agreement is not None and agree < a.min_agreement:
            failed = True
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"seed": a.seed, "count": a.count, "results": results, "rows": rows}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
