"""The official openai client against `vlm serve`: the issue's snippet unchanged but for URL,
image and model; streaming gives the same text at temperature 0; 16 concurrent clients each
get exactly their solo answer; the other endpoints."""
import base64
import concurrent.futures as cf
import json

import requests
from openai import OpenAI

from conftest import data_url, png_bytes
from helpers import assert_error, chat_body, with_image


def client(server, key="EMPTY"):
    # The snippet passes api_key=""; openai >= 3 refuses an empty key on the client side
    # before sending anything, so the placeholder vLLM's docs use stands in for it.
    return OpenAI(base_url=server.url("/v1"), api_key=key, max_retries=0, timeout=120)


def test_snippet_and_stream_agree(server, tmp_path):
    img = tmp_path / "image.png"
    img.write_bytes(png_bytes(64, 48, 5))
    c = client(server)
    with open(img, "rb") as f:
        data = base64.b64encode(f.read()).decode("utf-8")
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What is shown in the image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]}]
    response = c.chat.completions.create(model="test-model", messages=messages)
    assert response.object == "chat.completion"
    assert isinstance(response.choices[0].message.content, str)
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.usage.prompt_tokens > 16          # the image tokens are counted
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens

    plain = c.chat.completions.create(model="test-model", messages=messages, temperature=0, max_tokens=24)
    stream = c.chat.completions.create(model="test-model", messages=messages, temperature=0, max_tokens=24,
                                       stream=True, stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert text == plain.choices[0].message.content
    assert finish == plain.choices[0].finish_reason
    assert usage.completion_tokens == plain.usage.completion_tokens
    assert usage.prompt_tokens == plain.usage.prompt_tokens


def test_completions_and_logprobs(server):
    c = client(server)
    r = c.completions.create(model="test-model", prompt="User: hello", max_tokens=5, temperature=0, logprobs=2)
    assert r.object == "text_completion"
    assert r.usage.completion_tokens == len(r.choices[0].logprobs.tokens)
    assert all(lp <= 0 for lp in r.choices[0].logprobs.token_logprobs)
    s = "".join(ch.choices[0].text for ch in c.completions.create(
        model="test-model", prompt="User: hello", max_tokens=5, temperature=0, stream=True))
    assert s == r.choices[0].text
    ch = c.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "hi"}],
                                   max_tokens=3, temperature=0, logprobs=True, top_logprobs=2)
    content = ch.choices[0].logprobs.content
    assert len(content) == ch.usage.completion_tokens
    assert all(len(t.top_logprobs) == 2 for t in content)


def test_n_and_seed(server):
    c = client(server)
    r = c.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "hi"}],
                                  max_tokens=6, n=3, temperature=0)
    assert len(r.choices) == 3
    assert len({ch.message.content for ch in r.choices}) == 1     # greedy: all the same
    a = c.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "hi"}],
                                  max_tokens=6, temperature=1.0, seed=7)
    b = c.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "hi"}],
                                  max_tokens=6, temperature=1.0, seed=7)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_models_health_version_metrics(server):
    m = client(server).models.list()
    assert [x.id for x in m.data] == ["test-model"]
    assert requests.get(server.url("/health")).status_code == 200
    assert requests.get(server.url("/version")).json()["version"]
    t = requests.get(server.url("/metrics")).text
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
                 "vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_bucket",
                 "vlm:image_encode_seconds_count"):
        assert name in t
    assert_error(server.post("/v1/chat/completions", chat_body("hi", model="nope")), 404,
                 "The model `nope` does not exist.")
    assert requests.get(server.url("/nothing")).status_code == 404


def test_tokenize_detokenize(server):
    r = server.post("/tokenize", {"prompt": "hello world"}).json()
    assert r["count"] == len(r["tokens"]) > 0 and r["max_model_len"] > 0
    d = server.post("/detokenize", {"tokens": r["tokens"]}).json()
    assert "hello world" in d["prompt"]
    img = data_url(png_bytes(32, 32))
    chat = server.post("/tokenize", {"messages": [{"role": "user", "content": with_image(img)}]}).json()
    plain = server.post("/tokenize", {"messages": [{"role": "user", "content": "What is shown in the image?"}]}).json()
    assert chat["count"] > plain["count"] + 10       # image tokens are part of the prompt


def test_api_key(start_server):
    s = start_server("--api-key", "sekret")
    r = s.post("/v1/chat/completions", chat_body("hi"))
    assert_error(r, 401)
    r = s.post("/v1/chat/completions", chat_body("hi"), headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    ok = client(s, "sekret").chat.completions.create(model="test-model", messages=[{"role": "user", "content": "hi"}],
                                                      max_tokens=2)
    assert ok.choices[0].finish_reason in ("stop", "length")
    assert requests.get(s.url("/health")).status_code == 200     # not under /v1


def _ask(server, i, stream):
    body = chat_body(with_image(data_url(png_bytes(32 + i, 24, i))) if i % 2 == 0 else f"Say something about {i}.",
                     max_tokens=16)
    if not stream:
        r = server.post("/v1/chat/completions", body)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"]
    body["stream"] = True
    text = ""
    with requests.post(server.url("/v1/chat/completions"), json=body, stream=True, timeout=300) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            j = json.loads(line[6:])
            assert "error" not in j, j
            for ch in j["choices"]:
                text += ch["delta"].get("content") or ""
    return text


def test_sixteen_concurrent_clients_match_solo(server):
    solo = {i: _ask(server, i, False) for i in range(16)}
    with cf.ThreadPoolExecutor(16) as ex:
        futs = {i: ex.submit(_ask, server, i, i % 3 == 0) for i in range(16)}
        got = {i: f.result() for i, f in futs.items()}
    assert got == solo


def test_vllm_command_line_compat(start_server):
    """A vLLM job script's line runs unchanged: --flag=value, nargs lists, flags with no effect."""
    s = start_server("--max-model-len=512", "--limit-mm-per-prompt={\"image\":1}", "--gpu-memory-utilization", "0.9",
                     "--trust-remote-code", "--dtype=bfloat16", "--max-num-batched-tokens", "512")
    assert s.post("/tokenize", {"prompt": "x"}).json()["max_model_len"] == 512
    two = with_image(data_url(png_bytes(20, 20))) + with_image(data_url(png_bytes(21, 20)))
    assert_error(s.post("/v1/chat/completions", chat_body(two)), 400, "At most 1 image(s)")


def test_kv_cache_dtype(start_server, vlm_env):
    """--kv-cache-dtype float16/bfloat16 (vLLM's flag) serves answers; fp8 is refused at start."""
    import subprocess
    for t in ("float16", "bfloat16"):
        s = start_server("--kv-cache-dtype", t)
        for i in (0, 1):
            assert isinstance(_ask(s, i, False), str)
    bad = subprocess.run([vlm_env[0], "serve", "--kv-cache-dtype", "fp8"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--kv-cache-dtype fp8 is not supported" in bad.stderr


def test_dtype_and_quantization(start_server, vlm_env):
    """--dtype and --quantization (vLLM's flags) serve answers; unknown values are refused at start."""
    import subprocess
    for args in (("--dtype", "float32"), ("--quantization", "q8_0")):
        s = start_server(*args)
        assert isinstance(_ask(s, 0, False), str)
    for flag, val in (("--dtype", "foo"), ("--quantization", "q3_x")):
        bad = subprocess.run([vlm_env[0], "serve", flag, val], capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2 and f"unknown value '{val}'" in bad.stderr


def test_stop_strings(server):
    """Text is cut before a stop string (or kept with include_stop_str_in_output), the same in
    streaming, with finish_reason "stop"."""
    c = client(server)
    msgs = [{"role": "user", "content": with_image(data_url(png_bytes(40, 30, 6)))}]
    full = c.chat.completions.create(model="test-model", messages=msgs, temperature=0, max_tokens=24,
                                     extra_body={"ignore_eos": True}).choices[0].message.content
    assert len(full) >= 6, full
    stop = full[len(full) // 2: len(full) // 2 + 2]
    cut = full[:full.index(stop)]
    r = c.chat.completions.create(model="test-model", messages=msgs, temperature=0, max_tokens=24, stop=[stop],
                                  extra_body={"ignore_eos": True})
    assert r.choices[0].message.content == cut
    assert r.choices[0].finish_reason == "stop"
    s = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="test-model", messages=msgs, temperature=0, max_tokens=24, stop=[stop], stream=True,
        extra_body={"ignore_eos": True}) if ch.choices)
    assert s == cut
    k = c.chat.completions.create(model="test-model", messages=msgs, temperature=0, max_tokens=24, stop=stop,
                                  extra_body={"ignore_eos": True, "include_stop_str_in_output": True})
    assert k.choices[0].message.content == cut + stop


def test_serve_help_and_bad_model(vlm_env, tmp_path):
    import subprocess
    out = subprocess.run([vlm_env[0], "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for flag in ("--host", "--port", "--served-model-name", "--api-key", "--max-model-len", "--max-num-seqs",
                 "--limit-mm-per-prompt", "--allowed-local-media-path", "--allowed-media-domains",
                 "--mm-processor-kwargs", "--media-io-kwargs", "--chat-template", "--trust-request-chat-template",
                 "--generation-config", "--threads", "--allow-private-media-urls", "--max-request-bytes",
                 "--max-image-pixels", "--kv-cache-dtype", "--dtype", "--quantization", "--max-num-batched-tokens", "VLLM_IMAGE_FETCH_TIMEOUT", "VLLM_MAX_IMAGE_PIXELS",
                 "VLLM_MEDIA_URL_ALLOW_REDIRECTS", "VLLM_API_KEY"):
        assert flag in out.stdout, flag
    bad = subprocess.run([vlm_env[0], "serve", str(tmp_path / "nope"), "--port", "0"], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 1 and "vlm serve:" in bad.stderr
    bad = subprocess.run([vlm_env[0], "serve", "--limit-mm-per-prompt", "image=2"], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2
