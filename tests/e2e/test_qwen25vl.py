"""Qwen2.5-VL through `vlm serve`, end to end: a tiny random Qwen2.5-VL with a byte-level
tokenizer, the real chat template and a small processor (tests/fixtures/qwen25vl/q25-serve, made
by scripts/make_qwen25vl_fixtures.py) answers image requests with the prompt length and the 8
greedy tokens transformers gives for the same messages, including requests whose
mm_processor_kwargs change the image grid (max_pixels below the model's, and values above the
ceiling, which are clamped to it)."""
import base64
import json
import os

import pytest

from conftest import ROOT, Server

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "qwen25vl", "q25-serve")


@pytest.fixture(scope="module")
def qwen_server(vlm_env):
    if not os.path.isfile(os.path.join(FIXTURE, "serve_ref.json")):
        pytest.skip("no tests/fixtures/qwen25vl/q25-serve (scripts/make_qwen25vl_fixtures.py)")
    s = Server(vlm_env[0], FIXTURE, ["--max-model-len", "1024"])
    yield s
    s.stop()


def test_answers_equal_transformers(qwen_server):
    refs = json.load(open(os.path.join(FIXTURE, "serve_ref.json")))
    url = "data:image/png;base64," + base64.b64encode(open(os.path.join(FIXTURE, "image.png"), "rb").read()).decode()
    for ref in refs:
        body = {"model": "test-model", "max_tokens": 8, "temperature": 0, "ignore_eos": True, "logprobs": True,
                "skip_special_tokens": False,
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                          {"type": "text", "text": ref["text"]}]}]}
        if ref["mm_processor_kwargs"]:
            body["mm_processor_kwargs"] = ref["mm_processor_kwargs"]
        r = qwen_server.post("/v1/chat/completions", body)
        assert r.status_code == 200, r.text
        out = r.json()
        what = f"{ref['text']!r} {ref['mm_processor_kwargs']}"
        assert out["usage"]["prompt_tokens"] == ref["prompt_tokens"], what
        assert out["usage"]["completion_tokens"] == 8, what
        got = [t["bytes"] for t in out["choices"][0]["logprobs"]["content"]]
        assert got == ref["token_bytes"], what
