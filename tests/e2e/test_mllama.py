"""Llama 3.2 Vision (Mllama, images through cross-attention) behind the real server, with the tiny
random model tests/fixtures/server/tiny-mllama (real Llama 3.2 Vision chat template): answers
with zero, one and two images, the same answers when such requests run together (continuous
batching of sequences holding different numbers of images), and clean 400s for too many images,
a placeholder count that does not match the images and a system message beside images; a model
folder missing a cross-attention tensor fails to load naming the tensor and the file."""
import concurrent.futures
import json
import os
import shutil
import struct
import subprocess

import pytest

from conftest import ROOT, Server, data_url, find_bin, png_bytes
from helpers import assert_error, image_part

MODEL = os.path.join(ROOT, "tests", "fixtures", "server", "tiny-mllama")


@pytest.fixture(scope="module")
def mllama():
    b = find_bin()
    if not b:
        pytest.skip("no vlm binary: build it (make build) or set VLM_BIN")
    s = Server(b, MODEL, ["--limit-mm-per-prompt", '{"image":2}', "--max-num-seqs", "4"])
    yield s
    s.stop()


def ask(server, n_images, text="Describe both images.", **kw):
    parts = [image_part(data_url(png_bytes(30 + 17 * (i % 3), 20 + 9 * (i % 3), i % 3))) for i in range(n_images)]
    body = {"model": "test-model", "messages": [{"role": "user", "content": parts + [{"type": "text", "text": text}]}],
            "max_tokens": 6, "temperature": 0}
    body.update(kw)
    return server.post("/v1/chat/completions", body)


def answer(r):
    assert r.status_code == 200, r.text[:500]
    j = r.json()
    assert j["choices"][0]["finish_reason"] in ("stop", "length")
    return j["choices"][0]["message"]["content"], j["usage"]


def test_zero_one_two_images(mllama):
    texts = set()
    for n in (0, 1, 2):
        t, u = answer(ask(mllama, n))
        assert u["completion_tokens"] >= 1
        texts.add(t)
    # one <|image|> token per image (not spliced rows): the prompt grows by one token per image
    _, u1 = answer(ask(mllama, 1))
    _, u2 = answer(ask(mllama, 2))
    assert u2["prompt_tokens"] == u1["prompt_tokens"] + 1


def test_batched_answers_equal_alone(mllama):
    alone = [answer(ask(mllama, n % 3))[0] for n in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        together = list(ex.map(lambda n: answer(ask(mllama, n % 3))[0], range(6)))
    assert together == alone


def test_too_many_images(mllama):
    assert_error(ask(mllama, 3), 400, "2")
    answer(ask(mllama, 2))


def test_placeholder_mismatch(mllama):
    assert_error(ask(mllama, 1, text="<|image|> and this one?"), 400)
    assert_error(ask(mllama, 0, text="<|image|> what is this?"), 400)
    answer(ask(mllama, 1))


def test_system_message_with_images(mllama):
    body = {"model": "test-model", "max_tokens": 4, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [image_part(data_url(png_bytes(24, 24, 1))), {"type": "text", "text": "Hi"}]}]}
    assert_error(mllama.post("/v1/chat/completions", body), 400)
    answer(ask(mllama, 1))


def _drop_tensor(src, dst, name):
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out, parts, off = {}, [], 0
    for k, v in header.items():
        if k == "__metadata__" or k == name:
            continue
        a, b = v["data_offsets"]
        parts.append(data[a:b])
        out[k] = dict(v, data_offsets=[off, off + b - a])
        off += b - a
    h = json.dumps(out).encode()
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(parts))


def test_missing_cross_attention_tensor(tmp_path):
    b = find_bin()
    if not b:
        pytest.skip("no vlm binary")
    d = tmp_path / "broken"
    shutil.copytree(MODEL, d)
    name = "language_model.model.layers.1.cross_attn.q_proj.weight"
    _drop_tensor(os.path.join(MODEL, "model.safetensors"), d / "model.safetensors", name)
    p = subprocess.run([b, "serve", str(d), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert name in p.stderr and "model.safetensors" in p.stderr, p.stderr


def test_more_images_than_the_model_takes():
    b = find_bin()
    if not b:
        pytest.skip("no vlm binary")
    s = Server(b, MODEL, ["--limit-mm-per-prompt", '{"image":80}'])
    try:
        assert_error(ask(s, 65), 400, "at most 64")
        answer(ask(s, 2))
    finally:
        s.stop()
