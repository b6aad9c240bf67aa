#!/usr/bin/env python3
"""Trains the vlm.c demo model (issue 6): a tiny Idefics3 (SmolVLM-family) checkpoint that answers
questions about the synthetic scenes of scripts/demo_scenes.py. Reproducible (the data stream is a
pure function of the flags), resumable, CPU or GPU:

  /work/venv/bin/python scripts/train_demo.py --work /tmp/demo-train --out models/vlm-demo

(models/vlm-demo/README.md gives the commands that made the committed weights.)

--init-only writes the untrained folder (tokenizer, processor, config) and exits. Re-running with the
same --work resumes from the last checkpoint there. Training data: scenes of seed --data-seed,
consumed in order (batch k = scenes k*B .. k*B+B-1), so a run is a pure function of its flags.
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (AutoProcessor, GenerationConfig, Idefics3Config,
                          Idefics3ForConditionalGeneration, Idefics3ImageProcessor,
                          Idefics3Processor, PreTrainedTokenizerFast)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_scenes as ds  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
SPECIAL = (["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>",
            "<end_of_utterance>", "<global-img>"]
           + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)])
VOCAB_SIZE = 512
ANSWER_PREFIX = ""   # --answer-space: " ", as an early models/vlm-demo was trained (answers "  A ...")

# model dimensions (see the model card for why)
IMAGE_SIZE = 256
PATCH = 16     # 16x16 patches: a 32-px patch left circles, squares and triangles too alike
SCALE = 4      # pixel shuffle 4: 256 patches -> 16 image tokens
IMAGE_SEQ_LEN = (IMAGE_SIZE // PATCH) ** 2 // SCALE ** 2          # 16
VISION = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
              image_size=IMAGE_SIZE, patch_size=PATCH)
TEXT = dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=6,
            num_key_value_heads=2, head_dim=32, max_position_embeddings=512, rope_theta=10000.0,
            rms_norm_eps=1e-5, hidden_act="silu")


def corpus_lines():
    """Text the tokenizer learns from: every question and answer form, plus the template words."""
    lines = ["User:", "Assistant:", "User: ", "Assistant: ", "\n"]
    rng = random.Random(0)
    for i in range(3000):
        qs = ds.questions(ds.make_scene(rng), rng)
        for _, q, a in qs:
            lines += [q, " " + a]
    return lines


def build_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        model_max_length=512, add_bos_token=False, add_eos_token=False, clean_up_tokenization_spaces=False)
    return fast


def build_processor(tokenizer):
    improc = Idefics3ImageProcessor(
        do_convert_rgb=True, do_resize=True, size={"longest_edge": IMAGE_SIZE}, resample=1,
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5], do_pad=True, do_image_splitting=False,
        max_image_size={"longest_edge": IMAGE_SIZE})
    return Idefics3Processor(improc, tokenizer, image_seq_len=IMAGE_SEQ_LEN, chat_template=SMOLVLM_TEMPLATE)


def build_config(tokenizer):
    tid = tokenizer.convert_tokens_to_ids
    eou = tid("<end_of_utterance>")
    text = dict(TEXT, vocab_size=len(tokenizer), bos_token_id=tid("<|im_start|>"), eos_token_id=eou,
                pad_token_id=tid("<|im_end|>"), tie_word_embeddings=False, model_type="llama")
    cfg = Idefics3Config(vision_config=dict(VISION), text_config=text, scale_factor=SCALE,
                         image_token_id=tid("<image>"), tie_word_embeddings=False,
                         pad_token_id=tid("<|im_end|>"))
    return cfg


def write_folder(out, model, processor):
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    tok = processor.tokenizer
    gen = GenerationConfig(bos_token_id=tok.convert_tokens_to_ids("<|im_start|>"),
                           eos_token_id=tok.convert_tokens_to_ids("<end_of_utterance>"),
                           pad_token_id=tok.convert_tokens_to_ids("<|im_end|>"), do_sample=False)
    gen.save_pretrained(out)
    # the image processor also gets its classic file, which readers of older folders expect
    improc = processor.image_processor.to_dict()
    improc = {k: v for k, v in improc.items() if not k.startswith("_")}
    improc.update(image_processor_type="Idefics3ImageProcessor", processor_class="Idefics3Processor")
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(improc, f, indent=2, sort_keys=True)
        f.write("\n")


def messages_for(question, answer, image_first):
    parts = [{"type": "image"}, {"type": "text", "text": question}]
    if not image_first:
        parts.reverse()
    msgs = [{"role": "user", "content": parts}]
    if answer is not None:
        # the template writes "Assistant: " before the text, so the answer starts with its word
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": ANSWER_PREFIX + answer}]})
    return msgs


def train_examples(seed, index, weights=None):
    """(image, question, answer, image_first) training examples of one scene: two of its questions,
    with harder 'no' questions (a present colour or a present shape) half of the time; `weights`
    (question type -> weight) favours some types."""
    rng = random.Random(seed * 7_919 + index)
    shapes, img, qs = ds.scene(seed, index)
    present = {(s["color"], s["shape"]) for s in shapes}
    if rng.random() < 0.5:
        near = [(c, s) for c in ds.COLOR_NAMES for s in ds.SHAPES if (c, s) not in present
                and any(c == pc or s == ps for pc, ps in present)]
        if near:
            c, s = rng.choice(near)
            qs = [q for q in qs if not (q[0] == "exists" and q[2] == "No.")]
            qs.append(("exists", f"Is there a {c} {s}?", "No."))
    if weights:
        picks = []
        pool = list(qs)
        for _ in range(2):
            q = rng.choices(pool, [weights.get(t, 1.0) for t, _, _ in pool])[0]
            pool.remove(q)
            picks.append(q)
    else:
        picks = rng.sample(qs, 2)
    return [(img, q, a, t, rng.random() < 0.5) for t, q, a in picks]


def make_batch(processor, examples):
    """Processor inputs plus labels that cover only the answer tokens and <end_of_utterance>."""
    tok = processor.tokenizer
    eou = tok.convert_tokens_to_ids("<end_of_utterance>")
    full = [processor.apply_chat_template(messages_for(q, a, f), tokenize=False) for _, q, a, _, f in examples]
    prompts = [processor.apply_chat_template(messages_for(q, None, f), tokenize=False,
                                             add_generation_prompt=True) for _, q, _, _, f in examples]
    images = [[e[0]] for e in examples]
    enc = processor(text=full, images=images, return_tensors="pt", padding=True)
    penc = processor(text=prompts, images=images, return_tensors="pt", padding=True)
    labels = torch.full_like(enc["input_ids"], -100)
    assert tok.padding_side == "right" or enc["attention_mask"].all()
    for i in range(len(examples)):
        plen = int(penc["attention_mask"][i].sum())
        ids = enc["input_ids"][i]
        assert torch.equal(ids[:plen], penc["input_ids"][i][:plen]), "prompt is not a token prefix"
        end = (ids[plen:] == eou).nonzero()[0, 0].item() + plen
        labels[i, plen:end + 1] = ids[plen:end + 1]
    enc["labels"] = labels
    return enc


def make_batch_fast(processor, examples, compact=False):
    """make_batch's result computed with one image-processor call per distinct image and plain
    tokenizer calls on the prompt with the image expanded as Idefics3Processor expands it
    (checked equal to make_batch at start-up). With `compact`, the distinct images travel as
    uint8 (`pixels_u8`, `pixel_index`) and expand_pixels() normalises them on the training
    device: a batch is then a quarter of the bytes per image and none per repeat."""
    tok = processor.tokenizer
    eou = tok.convert_tokens_to_ids("<end_of_utterance>")
    expanded = ("<fake_token_around_image><global-img>" + "<image>" * processor.image_seq_len
                + "<fake_token_around_image>")
    uniq, index = [], []
    for e in examples:
        for j, u in enumerate(uniq):
            if u is e[0]:
                index.append(j)
                break
        else:
            index.append(len(uniq))
            uniq.append(e[0])
    full = [processor.apply_chat_template(messages_for(q, a, f), tokenize=False).replace("<image>", expanded)
            for _, q, a, _, f in examples]
    prompts = [processor.apply_chat_template(messages_for(q, None, f), tokenize=False, add_generation_prompt=True)
               .replace("<image>", expanded) for _, q, _, _, f in examples]
    enc = tok(full, return_tensors="pt", padding=True)
    sel = torch.tensor(index)
    out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if compact:
        out["pixels_u8"] = torch.from_numpy(np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8)
                                                      for im in uniq]))
        out["pixel_index"] = sel
    else:
        pix = pixel_inputs(processor, uniq)
        out["pixel_values"] = pix["pixel_values"][sel]
        out["pixel_attention_mask"] = pix["pixel_attention_mask"][sel]
    labels = torch.full_like(enc["input_ids"], -100)
    for i, p in enumerate(prompts):
        plen = len(tok(p)["input_ids"])
        ids = enc["input_ids"][i]
        end = (ids[plen:] == eou).nonzero()[0, 0].item() + plen
        labels[i, plen:end + 1] = ids[plen:end + 1]
    out["labels"] = labels
    return out


def pixel_inputs(processor, images):
    """The image processor's output for single-tile 256x256 images (no resize, no padding needed):
    x / 255 then (x - 0.5) / 0.5, per channel, as float32 in N x 1 x 3 x H x W."""
    ip = processor.image_processor
    x = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images])
    assert x.shape[1] == x.shape[2] == ip.max_image_size["longest_edge"]
    x = x * np.float32(ip.rescale_factor)
    x = (x - np.array(ip.image_mean, np.float32)) / np.array(ip.image_std, np.float32)
    pv = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))[:, None]
    return {"pixel_values": pv, "pixel_attention_mask": torch.ones(pv.shape[0], 1, pv.shape[3], pv.shape[4],
                                                                   dtype=torch.long)}


def expand_pixels(processor, batch):
    """pixel_inputs() of a compact batch, computed where its tensors are (the same arithmetic)."""
    ip = processor.image_processor
    u8, sel = batch.pop("pixels_u8"), batch.pop("pixel_index")
    assert u8.shape[1] == u8.shape[2] == ip.max_image_size["longest_edge"]
    x = u8.float() * ip.rescale_factor
    x = (x - torch.tensor(ip.image_mean, device=x.device)) / torch.tensor(ip.image_std, device=x.device)
    pv = x.permute(0, 3, 1, 2).contiguous()[sel][:, None]
    batch["pixel_values"] = pv
    batch["pixel_attention_mask"] = torch.ones(pv.shape[0], 1, pv.shape[3], pv.shape[4], dtype=torch.long,
                                               device=pv.device)
    return batch


def check_fast_batch(processor, examples):
    a, b = make_batch(processor, examples), make_batch_fast(processor, examples)
    c = expand_pixels(processor, make_batch_fast(processor, examples, compact=True))
    for k in b:
        assert torch.equal(b[k], c[k]), f"compact batch differs in {k}"
        assert a[k].shape == b[k].shape, k
        if k == "pixel_values":
            assert torch.allclose(a[k], b[k], atol=1e-6), "pixel values differ from the processor's"
        else:
            assert torch.equal(a[k].long(), b[k].long()), f"fast batch differs from the processor's in {k}"


class StepBatches(torch.utils.data.Dataset):
    """Batch k of the training stream (a pure function of k), for DataLoader workers."""

    def __init__(self, processor, data_seed, scenes_per_step, steps, weights=None):
        self.processor, self.data_seed, self.n, self.steps = processor, data_seed, scenes_per_step, steps
        self.weights = weights

    def __len__(self):
        return self.steps

    def __getitem__(self, k):
        ex = [e for i in range(k * self.n, (k + 1) * self.n)
              for e in train_examples(self.data_seed, i, self.weights)]
        return make_batch_fast(self.processor, ex, compact=True)


@torch.no_grad()
def teacher_forced_exact(model, batch):
    """Per example: does greedy decoding reproduce the labelled answer? (With teacher forcing,
    every answer token being the argmax is the same as greedy decoding producing the answer.)"""
    dev = next(model.parameters()).device
    batch = {k: v.to(dev) for k, v in batch.items()}
    out = model(**{k: v for k, v in batch.items() if k != "labels"})
    pred = out.logits[:, :-1].argmax(-1)
    lab = batch["labels"][:, 1:]
    ok = (pred == lab) | (lab == -100)
    return ok.all(-1).tolist()


def evaluate(model, processor, seed, count):
    model.eval()
    per = {}
    for i in range(count):
        shapes, img, qs = ds.scene(seed, i)
        ex = [(img, q, a, t, (i + j) % 2 == 0) for j, (t, q, a) in enumerate(qs)]
        for (_, _, _, t, _), ok in zip(ex, teacher_forced_exact(model, make_batch_fast(processor, ex))):
            per.setdefault(t, []).append(ok)
    model.train()
    allv = [v for vs in per.values() for v in vs]
    return sum(allv) / len(allv), {t: sum(v) / len(v) for t, v in sorted(per.items())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/demo-train", help="scratch folder for checkpoints")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "vlm-demo"))
    ap.add_argument("--seed", type=int, default=1234, help="weight initialisation seed")
    ap.add_argument("--data-seed", type=int, default=1, help="training scene stream")
    ap.add_argument("--eval-seed", type=int, default=424242, help="scenes for progress reports")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32, help="examples per step (2 per scene)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--device", default="cpu", help="cpu (the reproducible recipe) or cuda (for trials)")
    ap.add_argument("--arch", default="", help='trial overrides, e.g. {"PATCH":16,"SCALE":4,"VISION":{...}}')
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--time-budget", type=float, default=0,
                    help="trials: set --steps from the speed of the first 60 steps to fit this many seconds")
    ap.add_argument("--type-weights", default="", help='question sampling weights, e.g. {"color":2}')
    ap.add_argument("--init-from", help="start from this model folder's weights (fresh optimizer)")
    ap.add_argument("--answer-space", action="store_true",
                    help="put a space before each answer (the target models/vlm-demo was trained on)")
    ap.add_argument("--resume-steps", type=int, help="on resume, a new schedule length (warm restart)")
    ap.add_argument("--stop-at", type=int, help="stop (and write --out) after this step")
    ap.add_argument("--time-schedule", type=float, default=0,
                    help="cosine over this many seconds of wall time from the start (or resume) instead of "
                         "over --steps, then stop (--steps still caps the run): for a shared CPU whose "
                         "speed changes")
    ap.add_argument("--init-only", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    global ANSWER_PREFIX
    ANSWER_PREFIX = " " if a.answer_space else ""
    if a.arch:
        g = globals()
        for k, v in json.loads(a.arch).items():
            g[k] = dict(g[k], **v) if isinstance(v, dict) else v
        g["VISION"] = dict(g["VISION"], image_size=IMAGE_SIZE, patch_size=PATCH)
        g["IMAGE_SEQ_LEN"] = (IMAGE_SIZE // PATCH) ** 2 // SCALE ** 2
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    os.makedirs(a.work, exist_ok=True)
    base = os.path.join(a.work, "base")
    if not os.path.exists(os.path.join(base, "config.json")):
        processor = build_processor(build_tokenizer())
        model = Idefics3ForConditionalGeneration(build_config(processor.tokenizer))
        write_folder(base, model, processor)
    processor = AutoProcessor.from_pretrained(base)
    torch.manual_seed(a.seed)
    model = Idefics3ForConditionalGeneration(build_config(processor.tokenizer)).float()
    if a.init_from:
        from safetensors.torch import load_file
        missing, unexpected = model.load_state_dict(
            load_file(os.path.join(a.init_from, "model.safetensors")), strict=False)
        assert not unexpected and not missing, (missing, unexpected)
        print(f"initialised from {a.init_from} (missing {missing})", flush=True)
    nparam = sum(p.numel() for p in model.parameters())
    print(f"parameters: {nparam} ({nparam * 4 / 1e6:.1f} MB f32)", flush=True)
    if a.init_only:
        write_folder(a.out, model, processor)
        return

    model.to(a.device)
    if a.device.startswith("cuda"):
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: trials on a GPU
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01)

    def lr_at(step):
        if step < a.warmup and not resumed:
            return a.lr * (step + 1) / a.warmup
        if a.time_schedule:
            p = (time.time() - tstart) / a.time_schedule
        else:
            p = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))

    step = 0
    resumed = False
    ckpt = os.path.join(a.work, "ckpt.pt")
    if os.path.exists(ckpt):
        st = torch.load(ckpt, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        a.steps = a.resume_steps or st.get("steps", a.steps)
        resumed = True
        print(f"resumed at step {step}", flush=True)
    model.to(a.device)
    model.train()
    per_scene = 2
    check_fast_batch(processor, [e for i in range(8) for e in train_examples(a.data_seed, i)])

    def save_ckpt():
        torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "opt": opt.state_dict(),
                    "step": step, "steps": a.steps}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)
        write_folder(os.path.join(a.work, "latest"), model, processor)
        model.to(a.device)

    data = StepBatches(processor, a.data_seed, a.batch // per_scene, 10 ** 7,
                       json.loads(a.type_weights) if a.type_weights else None)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(data, range(step, 10 ** 7)), batch_size=None, shuffle=False,
        num_workers=a.workers, prefetch_factor=8 if a.workers else None, persistent_workers=False)
    t0 = time.time()
    tstart = time.time()
    losses = []
    for batch in loader:
        if step >= a.steps or (a.stop_at and step >= a.stop_at):
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        batch = expand_pixels(processor, {k: v.to(a.device, non_blocking=True) for k, v in batch.items()})
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        if a.time_budget and step == 60 and not resumed:
            # fix the schedule length from the measured speed (printed, so --steps reproduces it)
            per = (time.time() - tstart) / 60
            a.steps = max(200, int(a.time_budget / per) // 100 * 100)
            print(f"time budget {a.time_budget}s at {per:.3f}s/step: --steps {a.steps}", flush=True)
        if step % 20 == 0:
            el = time.time() - t0
            print(f"step {step} loss {sum(losses) / len(losses):.4f} lr {lr_at(step):.2e} "
                  f"{el / 20:.3f}s/step", flush=True)
            losses, t0 = [], time.time()
        if a.time_schedule and time.time() - tstart >= a.time_schedule:
            a.steps = step
        last = step == a.steps or step == a.stop_at
        if step % a.ckpt_every == 0 or last:
            save_ckpt()
        if step % a.eval_every == 0 or last:
            acc, per_t = evaluate(model, processor, a.eval_seed, 40)
            print(f"eval step {step}: exact {acc:.3f} " + " ".join(f"{k}={v:.3f}" for k, v in per_t.items()),
                  flush=True)
            t0 = time.time()
    write_folder(a.out, model.cpu(), processor)
    shutil.copy(ckpt, os.path.join(a.work, f"final-{step}.pt"))
    print(f"wrote {a.out}", flush=True)


if __name__ == "__main__":
    main()
