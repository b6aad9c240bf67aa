"""RELIABILITY.md items 1-12 and 17 sent to a running server: each asserts the status, the error
body, and that a normal request still succeeds afterwards."""
import json
import os
import socket
import time
import urllib.parse

import pytest
import requests

from conftest import data_url, png_bytes, png_header_only
from helpers import assert_error, assert_healthy, chat_body, image_part, with_image


def ask_url(server, url):
    return server.post("/v1/chat/completions", chat_body(with_image(url)))


# 1 + 2: web URLs: private addresses, odd spellings, one parser -----------------------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/cat.png", "http://localhost:{port}/cat.png", "http://2130706433:{port}/cat.png",
    "http://0x7f000001:{port}/cat.png", "http://0177.0.0.1:{port}/cat.png", "http://127.1:{port}/cat.png",
    "http://[::1]:{port}/cat.png", "http://[::ffff:127.0.0.1]:{port}/cat.png", "http://169.254.169.254/latest",
    "http://10.0.0.1/x.png", "http://192.168.1.1/x.png", "http://[fe80::1]/x.png",
    "http://example.com\\@127.0.0.1:{port}/cat.png", "http://user@127.0.0.1:{port}/cat.png",
    "ftp://127.0.0.1/cat.png", "gopher://127.0.0.1/",
])
def test_private_and_odd_urls_refused(server, image_server, url):
    port = image_server.rsplit(":", 1)[1]
    assert_error(ask_url(server, url.format(port=port)), 400)
    assert_healthy(server)


def test_private_flag_opens_loopback(start_server, server, image_server):
    assert_error(ask_url(server, image_server + "/cat.png"), 400, "private")
    s = start_server("--allow-private-media-urls")
    r = ask_url(s, image_server + "/cat.png")
    assert r.status_code == 200, r.text
    assert ask_url(s, image_server + "/redirect-ok").status_code == 200
    # every redirect hop is checked again: metadata stays refused, loops are capped
    assert_error(ask_url(s, image_server + "/redirect-meta"), 400)
    assert_error(ask_url(s, image_server + "/redirect-loop"), 400)
    assert_error(ask_url(s, image_server + "/missing.png"), 400)
    assert_healthy(s)


def test_allowed_media_domains(start_server, image_server):
    s = start_server("--allow-private-media-urls", "--allowed-media-domains", "images.example.org", "localhost")
    assert_error(ask_url(s, image_server + "/cat.png"), 400, "allowed domains")      # 127.0.0.1 is not listed
    by_name = image_server.replace("127.0.0.1", "localhost")
    assert ask_url(s, by_name + "/cat.png").status_code == 200
    assert ask_url(s, by_name + "/redirect-ok").status_code == 200                # relative hop: same host
    assert_error(ask_url(s, by_name + "/redirect-ip"), 400, "allowed domains")    # every hop is checked
    assert_healthy(s)


def test_redirects_disabled_by_env(start_server, image_server):
    s = start_server("--allow-private-media-urls", env={"VLLM_MEDIA_URL_ALLOW_REDIRECTS": "0"})
    assert_error(ask_url(s, image_server + "/redirect-ok"), 400)
    assert ask_url(s, image_server + "/cat.png").status_code == 200


# 3: remote bodies: byte cap while reading, no decompression, total timeout -----------------

def test_remote_body_limits(start_server, image_server):
    s = start_server("--allow-private-media-urls", "--max-image-bytes", "1000000",
                     env={"VLLM_IMAGE_FETCH_TIMEOUT": "2"})
    assert_error(ask_url(s, image_server + "/endless"), 413)
    assert_error(ask_url(s, image_server + "/gzip.png"), 400)
    t0 = time.time()
    assert_error(ask_url(s, image_server + "/slow"), 400)
    assert time.time() - t0 < 10
    assert_healthy(s)


# 4: file:// ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def media_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    allowed, sibling = root / "allowed", root / "allowed2"
    allowed.mkdir()
    sibling.mkdir()
    (allowed / "sub").mkdir()
    (allowed / "cat.png").write_bytes(png_bytes(40, 30, 2))
    (sibling / "cat.png").write_bytes(png_bytes(40, 30, 2))
    (root / "secret.png").write_bytes(png_bytes(40, 30, 2))
    os.symlink(root / "secret.png", allowed / "link.png")
    os.mkfifo(allowed / "fifo.png")
    return root


def test_file_urls(start_server, server, media_dirs):
    allowed = media_dirs / "allowed"
    s = start_server("--allowed-local-media-path", str(allowed))
    assert ask_url(s, f"file://{allowed}/cat.png").status_code == 200
    outside = [f"file://{media_dirs}/secret.png", f"file://{allowed}/../secret.png",
               f"file://{allowed}/%2e%2e/secret.png", f"file://{allowed}/link.png",
               f"file://{media_dirs}/allowed2/cat.png", f"file://{allowed}/fifo.png", f"file://{allowed}/sub",
               f"file://{allowed}/missing.png", "file:///etc/passwd", "file://otherhost/etc/passwd"]
    for url in outside:
        t0 = time.time()
        err = assert_error(ask_url(s, url), 400)
        assert str(media_dirs) not in err["message"]
        assert time.time() - t0 < 5            # a FIFO never blocks
    assert_error(ask_url(server, f"file://{allowed}/cat.png"), 400, "--allowed-local-media-path")
    assert_healthy(s)


# 5: data: URLs ------------------------------------------------------------------------------

@pytest.mark.parametrize("url,msg", [
    ("data:image/png;base64", "missing ','"),
    ("data:image/png;base64,", "empty"),
    ("data:text/plain;base64,aGVsbG8=", "media type"),
    ("data:image/png,aGVsbG8=", "base64"),
    ("data:image/png;base64,a GVsbG8=", "base64"),
    ("data:image/png;base64,aGVsbG8", "base64"),
    ("not-a-url", None),
])
def test_bad_data_urls(server, url, msg):
    assert_error(ask_url(server, url), 400, msg)
    assert_healthy(server)


def test_data_url_size_cap(start_server):
    s = start_server("--max-image-bytes", "4096")
    assert_error(ask_url(s, data_url(b"\0" * 10000)), 413)
    assert_healthy(s)


# 6: image count and body size ----------------------------------------------------------------

def test_limit_mm_per_prompt(start_server):
    s = start_server("--limit-mm-per-prompt", '{"image":1}')
    one = data_url(png_bytes(30, 30, 1))
    assert s.post("/v1/chat/completions", chat_body(with_image(one))).status_code == 200
    two = with_image(one) + [image_part(data_url(png_bytes(30, 30, 2)))]
    assert_error(s.post("/v1/chat/completions", chat_body(two)), 400,
                 "At most 1 image(s) may be provided in one prompt.")
    # across messages too
    body = chat_body(with_image(one))
    body["messages"].append({"role": "user", "content": with_image(one)})
    assert_error(s.post("/v1/chat/completions", body), 400, "At most 1 image(s)")
    z = start_server("--limit-mm-per-prompt", '{"image":0}')
    assert_error(z.post("/v1/chat/completions", chat_body(with_image(one))), 400, "At most 0 image(s)")
    assert_healthy(s)


def test_body_cap_413(start_server):
    s = start_server("--max-request-bytes", "100000")
    big = chat_body("x" * 200000)
    assert_error(s.post("/v1/chat/completions", big), 413)
    # a chunked upload without Content-Length is cut off while it arrives
    def gen():
        yield b'{"messages":[{"role":"user","content":"'
        for _ in range(50):
            yield b"y" * 10000
        yield b'"}]}'
    try:
        r = requests.post(s.url("/v1/chat/completions"), data=gen(), timeout=30,
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 413
    except requests.ConnectionError:
        pass                                   # the server may close while we still send
    assert_healthy(s)


# 7 + 8: images --------------------------------------------------------------------------------

@pytest.mark.parametrize("blob,status", [
    (png_header_only(65535, 65535), 413),
    (b"", 400),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, 400),
    (png_bytes(20, 20)[:60], 400),
    (b"GIF89a" + b"\xff" * 20, 400),
    (b"hello world, not an image", 400),
])
def test_bad_images(server, blob, status):
    url = data_url(blob) if blob else "data:image/png;base64,"
    assert_error(ask_url(server, url), status if blob else 400)
    assert_healthy(server)


def test_pixel_cap(start_server):
    s = start_server("--max-image-pixels", "1000")
    assert_error(ask_url(s, data_url(png_bytes(40, 40))), 413)
    assert s.post("/v1/chat/completions", chat_body(with_image(data_url(png_bytes(20, 20))))).status_code == 200


# 9: placeholders typed into text ---------------------------------------------------------------

def test_typed_placeholders(server):
    img = data_url(png_bytes(30, 30))
    assert_error(server.post("/v1/chat/completions", chat_body("look: <image>")), 400)
    assert_error(server.post("/v1/chat/completions", chat_body(with_image(img, "two: <image>"))), 400)
    assert_error(server.post("/v1/completions", {"prompt": "User:<image> hi", "max_tokens": 3}), 400)
    assert_healthy(server)


# 10: per-request processor overrides are clamped -------------------------------------------------

def test_processor_overrides_clamped(server):
    img = data_url(png_bytes(900, 600))
    tokens = lambda **kw: server.post("/v1/chat/completions", chat_body(with_image(img), max_tokens=1, **kw)).json()["usage"]["prompt_tokens"]
    base = tokens()
    # asking for more (bigger images, other tile size) gets no more than the server's setting
    assert tokens(mm_processor_kwargs={"size": {"longest_edge": 100000}, "max_image_size": {"longest_edge": 100000}}) == base
    # lowering is allowed: fewer tiles, fewer image tokens
    assert tokens(mm_processor_kwargs={"do_image_splitting": False}) <= base
    assert_healthy(server)


# 11: parameters and JSON -------------------------------------------------------------------

MSG = '"messages":[{"role":"user","content":"hi"}]'


@pytest.mark.parametrize("raw,msg", [
    ("{" + MSG + ',"n":0}', "n must be at least 1"),
    ("{" + MSG + ',"n":100000}', "n must be at most"),
    ("{" + MSG + ',"max_tokens":0}', "max_tokens must be at least 1"),
    ("{" + MSG + ',"max_tokens":-1}', "max_tokens"),
    ("{" + MSG + ',"logprobs":true,"top_logprobs":1000}', "max allowed"),
    ("{" + MSG + ',"stop":' + json.dumps(["s%d" % i for i in range(1000)]) + "}", "stop"),
    ("{" + MSG + ',"stop":["' + "x" * 5000 + '"]}', "stop"),
    ("{" + MSG + ',"logit_bias":' + json.dumps({str(i): 1 for i in range(5000)}) + "}", "logit_bias"),
    ("{" + MSG + ',"logit_bias":{"999999999":1}}', "logit_bias"),
    ("{" + MSG + ',"temperature":NaN}', "Invalid request body"),
    ("{" + MSG + ',"temperature":Infinity}', "Invalid request body"),
    ("{" + MSG + ',"temperature":-Infinity}', "Invalid request body"),
    ("{" + MSG + ',"temperature":1e999}', "Invalid request body"),
    ("{" + MSG + ',"max_tokens":123456789012345678901234567890}', "Invalid request body"),
    ("{" + MSG + ',"seed":99999999999999999999}', "Invalid request body"),
    ("{" + MSG + ',"x":' + "[" * 10000 + "]" * 10000 + "}", "nested too deeply"),
    ("{" + MSG + "," + MSG + "}", "duplicate"),
    ("{" + MSG + ',"top_p":0}', "top_p"),
    ("{" + MSG + ',"temperature":-0.5}', "temperature"),
    ("{" + MSG + ',"stream_options":{"include_usage":true}}', "stream=True"),
    ("{" + MSG + ',"chat_template":"{{ 1 }}"}', "--trust-request-chat-template"),
    ("{}", "messages"),
    ("[]", "JSON object"),
    ("not json", "Invalid request body"),
    ('{"messages":[{"role":"user","content":[{"type":"audio_url","audio_url":{"url":"x"}}]}]}', "not supported"),
])
def test_bad_parameters(server, raw, msg):
    assert_error(server.post("/v1/chat/completions", raw), 400, msg)


def test_bad_parameters_then_healthy(server):
    assert_healthy(server)
    # unknown fields are ignored, as vLLM does
    r = server.post("/v1/chat/completions", chat_body("hi", some_future_field={"a": 1}, user="u"))
    assert r.status_code == 200


# 12: prompt past the context -----------------------------------------------------------------

def test_prompt_past_context(server):
    n_ctx = server.post("/tokenize", {"prompt": "x"}).json()["max_model_len"]
    r = server.post("/v1/chat/completions", chat_body("hello " * (n_ctx * 2)))
    assert_error(r, 400, "maximum context length")
    r = server.post("/v1/chat/completions", chat_body("hi", max_tokens=n_ctx * 10))
    assert_error(r, 400, "maximum context length")
    r = server.post("/v1/chat/completions", chat_body("a" * (8 << 20)))   # past the text cap, not tokenized
    assert r.status_code in (400, 413)
    assert_healthy(server)


# 17: a client that disconnects mid-stream frees its sequence at once ---------------------------

def gauge(server, name):
    for line in requests.get(server.url("/metrics")).text.splitlines():
        if line.startswith(name + "{"):
            return float(line.split()[-1])
    return -1


def running(server):
    return gauge(server, "vllm:num_requests_running")


def test_disconnect_mid_stream(server):
    n_ctx = server.post("/tokenize", {"prompt": "x"}).json()["max_model_len"]
    body = json.dumps(chat_body(with_image(data_url(png_bytes(32, 32, 9))), max_tokens=n_ctx - 100, stream=True,
                                ignore_eos=True)).encode()
    host, port = "127.0.0.1", server.port
    aborted = lambda: sum(float(l.split()[-1]) for l in requests.get(server.url("/metrics")).text.splitlines()
                          if l.startswith('vllm:request_success_total{finished_reason="abort"'))
    aborted0 = aborted()
    for _ in range(3):
        s = socket.create_connection((host, port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        got = b""
        while b"data: " not in got:
            chunk = s.recv(4096)
            assert chunk and got[:12] in (b"", b"HTTP/1.1 200"[:len(got[:12])]), got[:300]
            got += chunk
        s.close()
    deadline = time.time() + 5
    while time.time() < deadline and (running(server) != 0 or gauge(server, "vllm:kv_cache_usage_perc") != 0):
        time.sleep(0.05)
    assert running(server) == 0
    assert gauge(server, "vllm:kv_cache_usage_perc") == 0      # the KV blocks are back
    assert aborted() == aborted0 + 3                            # cut short, not run to the end
    assert_healthy(server)


# 19: sustained mixed load: failures equal the bad requests, memory and descriptors stay flat --

def _fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _mixed_round(s, n):
    import concurrent.futures as cf
    good_img = data_url(png_bytes(36, 36, 4))

    def one(i):
        kind = i % 6
        if kind == 0:
            return "good", s.post("/v1/chat/completions", chat_body(with_image(good_img), max_tokens=6)).status_code
        if kind == 1:
            return "good", s.post("/v1/chat/completions", chat_body(f"hello {i}", max_tokens=6)).status_code
        if kind == 2:
            return "bad", s.post("/v1/chat/completions", '{"messages": [}').status_code
        if kind == 3:
            return "bad", s.post("/v1/chat/completions", chat_body(with_image("http://127.0.0.1:1/x.png"))).status_code
        if kind == 4:
            return "bad", s.post("/v1/chat/completions", chat_body(with_image("data:image/png;base64,!!"))).status_code
        body = json.dumps(chat_body("cancel me", max_tokens=200, stream=True, ignore_eos=True)).encode()
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        c.recv(100)
        c.close()
        return "cancel", 0

    with cf.ThreadPoolExecutor(8) as ex:
        return list(ex.map(one, range(n)))


def test_mixed_load_flat(start_server):
    s = start_server()
    pid = s.proc.pid
    _mixed_round(s, 60)                               # warm-up: caches, arenas, threads
    time.sleep(0.5)
    fds0, rss0 = _fds(pid), _rss_kb(pid)
    for _ in range(2):
        res = _mixed_round(s, 120)
        assert all(code == 200 for kind, code in res if kind == "good"), res
        assert all(code == 400 for kind, code in res if kind == "bad"), res
    deadline = time.time() + 5
    while time.time() < deadline and running(s) != 0:
        time.sleep(0.05)
    assert running(s) == 0
    deadline = time.time() + 10             # closed connections' threads may take a moment to go
    while time.time() < deadline and _fds(pid) > fds0 + 2:
        time.sleep(0.1)
    assert _fds(pid) <= fds0 + 2, (fds0, _fds(pid))
    with open(f"/proc/{pid}/maps") as f:
        sanitized = "libasan" in f.read()            # ASan's quarantine holds freed memory on purpose
    if not sanitized:
        assert _rss_kb(pid) < rss0 + 20 * 1024, (rss0, _rss_kb(pid))
    assert_healthy(s)


# a failure after the stream started is one `data: {"error": ...}` event ---------------------

def test_mid_stream_error_event(start_server):
    s = start_server("--kv-cache-tokens", "64")       # room for one short sequence only
    body = chat_body("hi", max_tokens=200, ignore_eos=True, stream=True)
    events = []
    with requests.post(s.url("/v1/chat/completions"), json=body, stream=True, timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith(b"data: "):
                events.append(line[6:])
    assert events[-1] == b"[DONE]"
    errors = [json.loads(e) for e in events[:-1] if b'"error"' in e]
    assert len(errors) == 1 and errors[0]["error"]["code"] >= 400, events[-3:]
    assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"      # the stream had started
    # the same without streaming is a plain error response; a short request still works
    r = s.post("/v1/chat/completions", chat_body("hi", max_tokens=200, ignore_eos=True))
    assert r.status_code >= 400 and "error" in r.json()
    ok = s.post("/v1/chat/completions", chat_body("hi", max_tokens=4))
    assert ok.status_code == 200
