#!/usr/bin/env python3
"""Writes tests/fixtures/scenes/: a few demo scenes (PNG), their questions with the expected answers,
and, given --model, what transformers answers greedily (text and token ids) for the exact prompt a
client's [text, image] message produces. Also copies one scene to models/vlm-demo/example.png.

  /work/venv/bin/python scripts/make_demo_fixtures.py --model models/vlm-demo
"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_scenes as ds  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--model", help="annotate with this folder's transformers greedy answers")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "scenes"))
    ap.add_argument("--example", type=int, default=9, help="scene index copied to models/vlm-demo/example.png")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    hf = None
    if a.model:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
        torch.set_num_threads(2)
        proc = AutoProcessor.from_pretrained(a.model)
        model = AutoModelForImageTextToText.from_pretrained(a.model, dtype=torch.float32).eval()
        hf = (torch, proc, model)
    records = []
    for i in range(a.count):
        shapes, img, qs = ds.scene(a.seed, i)
        name = f"scene_{i:03d}.png"
        img.save(os.path.join(a.out, name), optimize=True)
        rec = {"image": name, "seed": a.seed, "index": i,
               "shapes": [{"shape": s["shape"], "color": s["color"], "rgb": list(s["rgb"]),
                           "box": list(s["box"])} for s in shapes],
               "questions": []}
        for t, q, ans in qs:
            item = {"type": t, "question": q, "answer": ans}
            if hf:
                torch, proc, model = hf
                msgs = [{"role": "user", "content": [{"type": "text", "text": q}, {"type": "image"}]}]
                prompt = proc.apply_chat_template(msgs, add_generation_prompt=True)
                enc = proc(text=prompt, images=[img], return_tensors="pt")
                with torch.no_grad():
                    out = model.generate(**enc, max_new_tokens=32, do_sample=False)
                gen = out[0, enc["input_ids"].shape[1]:].tolist()
                item.update(prompt=prompt, prompt_tokens=enc["input_ids"].shape[1],
                            hf_token_ids=gen, hf_answer=proc.decode(gen, skip_special_tokens=True))
            rec["questions"].append(item)
        records.append(rec)
    with open(os.path.join(a.out, "scenes.json"), "w") as f:
        json.dump({"generator": "scripts/demo_scenes.py", "model": "models/vlm-demo" if a.model else None,
                   "scenes": records}, f, indent=1)
        f.write("\n")
    ex = os.path.join(ROOT, "models", "vlm-demo", "example.png")
    os.makedirs(os.path.dirname(ex), exist_ok=True)
    shutil.copy(os.path.join(a.out, f"scene_{a.example:03d}.png"), ex)


if __name__ == "__main__":
    main()
