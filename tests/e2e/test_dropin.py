"""`vlm serve` as a drop-in for `vllm serve` (issue 15): hostile clients cannot starve /health,
slow senders are cut, broken HTTP gets a JSON error at once, SIGTERM drains gracefully, vLLM
command lines are accepted as people paste them, refusals are honest. Each test is bounded in
time and talks only to 127.0.0.0/8 and ::1."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import ROOT, Server, data_url, free_port, png_bytes
from helpers import assert_error, assert_healthy, chat_body, with_image


def raw(port, data, wait=5.0, host="127.0.0.1", src=None):
    """Sends data on a fresh connection and returns (reply bytes, seconds until the peer closed)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    if src:
        s.bind((src, 0))
    s.settimeout(wait)
    s.connect((host, port))
    t0 = time.time()
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        out += b"<<timeout>>"
    except ConnectionResetError:   # the answer, if any, came before the reset
        pass
    s.close()
    return out, time.time() - t0


def json_error_of(reply):
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert b"application/json" in head, head
    err = json.loads(body)["error"]
    assert err["code"] == status and err["message"]
    return status, err


# 1 + 20: one client's half-open connections cannot starve /health ---------------------------

def test_health_answers_while_one_client_hoards_connections(start_server):
    s = start_server("--max-connections-per-ip", "64")
    socks, stop = [], threading.Event()
    try:
        for _ in range(600):   # from 127.0.0.2: another client address on the loopback
            c = socket.socket()
            c.bind(("127.0.0.2", 0))
            c.settimeout(5)
            try:
                c.connect(("127.0.0.1", s.port))
                c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                pass
            socks.append(c)
        worst = 0
        for _ in range(10):
            t0 = time.time()
            assert requests.get(s.url("/health"), timeout=1).status_code == 200
            worst = max(worst, time.time() - t0)
            time.sleep(0.05)
        assert worst < 1.0, worst
        # the hoarder itself is held to its cap: a refused connection gets a 503 JSON answer
        reply, _ = raw(s.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", src="127.0.0.2")
        status, err = json_error_of(reply)
        assert status == 503 and "connections" in err["message"]
    finally:
        stop.set()
        for c in socks:
            c.close()
    assert_healthy(s)


# 2: slowloris in the head and in the body is cut by a deadline for the whole of each ---------

@pytest.mark.parametrize("where", ["head", "body"])
def test_slow_senders_are_cut(start_server, where):
    s = start_server("--request-header-timeout", "2", "--request-body-timeout", "2")
    c = socket.create_connection(("127.0.0.1", s.port))
    c.settimeout(1)
    t0 = time.time()
    if where == "body":
        c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    got = b""
    while time.time() - t0 < 10:
        try:
            c.sendall(b"X-Slow: a\r\n"[:1] if where == "head" else b"{")   # one byte every 0.5 s
        except OSError:
            break
        try:
            b = c.recv(4096)
            if not b:
                break
            got += b
        except socket.timeout:
            pass
        time.sleep(0.5)
    elapsed = time.time() - t0
    c.close()
    assert elapsed < 6, elapsed                    # cut at the deadline, not held for ever
    if got:
        status, _ = json_error_of(got)
        assert status == 408
    assert_healthy(s)


# 3: broken HTTP gets a JSON error at once ----------------------------------------------------

@pytest.mark.parametrize("data,status", [
    (b"\x00\x01\x02 GARBAGE \xff\xfe\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", 400),
    (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", 400),
    (b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
    (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
])
def test_broken_http_gets_a_json_error_at_once(server, data, status):
    reply, took = raw(server.port, data)
    assert took < 2, (took, reply[:200])
    assert json_error_of(reply)[0] == status


def test_chunked_bodies_and_keep_alive_and_pipelining(server):
    body = json.dumps({"prompt": "hello"}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 5]), body[i:i + 5]) for i in range(0, len(body), 5))
    req = b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    two = req + b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"   # pipelined on one connection
    reply, _ = raw(server.port, two)
    assert reply.count(b"HTTP/1.1 200 OK") == 2, reply[:500]
    assert b'"count"' in reply


def test_unknown_paths_and_ping(server):
    for p in ("/openapi.json", "/docs", "/v2/anything"):
        r = requests.get(server.url(p))
        assert r.status_code == 404 and r.json()["error"]["code"] == 404
    assert requests.get(server.url("/ping")).status_code == 200
    assert requests.post(server.url("/ping")).status_code == 200


# 4: file:// outside the folder: one answer whether or not the file exists ---------------------

def test_file_outside_allowed_folder_is_not_probed(start_server, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "exists.png").write_bytes(png_bytes(8, 8, 1))
    s = start_server("--allowed-local-media-path", str(allowed))

    def msg(url):
        r = s.post("/v1/chat/completions", chat_body(with_image(url)))
        return assert_error(r, 400)["message"]
    same = {msg(f"file://{tmp_path}/exists.png"), msg(f"file://{tmp_path}/missing.png"),
            msg(f"file://{allowed}/../exists.png"), msg(f"file://{allowed}/../missing.png"),
            msg("file:///etc/passwd"), msg("file:///etc/no-such-file")}
    assert len(same) == 1, same


# 6: SIGTERM: stop accepting, let requests finish in the grace period, then end them cleanly --

def test_sigterm_finishes_then_ends_requests_cleanly(start_server):
    # a context far past the demo model's 512 positions, so that a generation outlasts the grace
    s = start_server("--shutdown-timeout", "2", "--max-model-len", "8192", env={"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"})
    long = chat_body(with_image(data_url(png_bytes(16, 16, 4))), max_tokens=8000, ignore_eos=True)
    results, first = {}, threading.Event()

    def streamed():
        with requests.post(s.url("/v1/chat/completions"), json=dict(long, stream=True), stream=True, timeout=60) as r:
            results["stream"] = []
            for l in r.iter_lines():
                if l:
                    results["stream"].append(l)
                    first.set()

    def whole():
        results["whole"] = requests.post(s.url("/v1/chat/completions"), json=long, timeout=60)

    def short():
        results["short"] = requests.post(s.url("/v1/chat/completions"), json=chat_body("hi", max_tokens=40), timeout=60)

    threads = [threading.Thread(target=f) for f in (streamed, whole, short)]
    for t in threads:
        t.start()
    assert first.wait(30)
    time.sleep(0.2)
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(requests.ConnectionError):     # no new connections
        requests.get(s.url("/health"), timeout=2)
    for t in threads:
        t.join(30)
    assert s.proc.wait(20) == 0
    assert 1.5 < time.time() - t0 < 10                 # the grace period, then the end
    assert results["short"].status_code == 200         # finished inside the grace period
    ev = results["stream"]
    assert ev[-1] == b"data: [DONE]", ev[-3:]
    err = json.loads(ev[-2][len(b"data: "):])["error"]
    assert err["code"] == 503 and "shutting down" in err["message"]
    w = results["whole"]
    assert w.status_code == 503 and "shutting down" in w.json()["error"]["message"]


# 7 + 8: vLLM command lines as pasted ---------------------------------------------------------

def serve_cmd(vlm_env, *args, env=None, timeout=10):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([vlm_env[0], "serve", *args, "--help"] if "--help" in args else [vlm_env[0], "serve", *args],
                          capture_output=True, text=True, timeout=timeout, env=e)


def test_vllm_flags_accepted(vlm_env, tmp_path):
    cfg = tmp_path / "config.yaml"
    port = free_port()
    cfg.write_text(f"# vLLM --config\nport: {port}\nhost: \"127.0.0.1\"\nserved-model-name: from-yaml\n"
                   "uvicorn-log-level: info\nallowed-origins: [\"http://ok.example\"]\n")
    tok = os.path.join(vlm_env[1])
    args = ["--config", str(cfg), "--model", vlm_env[1], "-tp", "1", "--data-parallel-size", "1",
            "--limit-mm-per-prompt.image", "1", "--tokenizer", tok, "--max-logprobs", "2",
            "--chat-template-content-format", "openai", "--response-role", "bot", "--log-level", "debug",
            "--disable-log-requests", "--root-path", "/api", "--allowed-methods", '["GET", "POST"]',
            "--allowed-headers", '["*"]']
    p = subprocess.Popen([vlm_env[0], "serve", *args], stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(base + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        assert requests.get(base + "/v1/models").json()["data"][0]["id"] == "from-yaml"
        assert requests.get(base + "/api/v1/models").status_code == 200           # --root-path
        two = chat_body([{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": data_url(png_bytes(8, 8))}},
                         {"type": "image_url", "image_url": {"url": data_url(png_bytes(8, 8, 2))}}])
        two["model"] = "from-yaml"
        r = requests.post(base + "/v1/chat/completions", json=two)
        assert r.status_code == 400 and "At most 1 image" in r.json()["error"]["message"]   # dotted form
        one = chat_body("hi", max_tokens=2, logprobs=True, top_logprobs=3)
        one["model"] = "from-yaml"
        assert requests.post(base + "/v1/chat/completions", json=one).status_code == 400   # --max-logprobs 2
        one["top_logprobs"] = 2
        r = requests.post(base + "/v1/chat/completions", json=one)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["role"] == "bot"
        # CORS: the listed origin gets the header and a preflight answer; another does not
        r = requests.options(base + "/v1/chat/completions", headers={
            "Origin": "http://ok.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "http://ok.example"
        assert "authorization" in r.headers["Access-Control-Allow-Headers"]
        r = requests.options(base + "/v1/chat/completions", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert r.status_code == 400 and "Access-Control-Allow-Origin" not in r.headers
        r = requests.get(base + "/v1/models", headers={"Origin": "http://ok.example"})
        assert r.headers.get("Access-Control-Allow-Origin") == "http://ok.example"
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "has no effect here" in err                     # -tp / --data-parallel-size: a one-line note
    assert "chat " not in err.split("serving", 1)[-1] or "chatcmpl" not in err   # --disable-log-requests


def test_cors_default_allows_any_origin(server):
    r = requests.options(server.url("/v1/chat/completions"), headers={
        "Origin": "http://anywhere.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("args,env,text", [
    (["--dtype", "foo"], None, "dtype"),
    (["--max-model-len", "1000000"], None, "VLLM_ALLOW_LONG_MAX_MODEL_LEN"),
    (["--max-num-seqz", "4"], None, "did you mean --max-num-seqs"),
    (["--config", "/nonexistent.yaml"], None, "--config"),
    (["--chat-template-content-format", "xml"], None, "--chat-template-content-format"),
    (["--ssl-certfile", "/nonexistent.pem", "--ssl-keyfile", "/nonexistent.key"], None, "--ssl-certfile"),
])
def test_bad_command_lines_are_refused(vlm_env, args, env, text):
    p = serve_cmd(vlm_env, vlm_env[1], "--port", str(free_port()), *args, env=env)
    assert p.returncode != 0 and text in p.stderr, p.stderr


def test_long_max_model_len_allowed_by_env(start_server):
    s = start_server("--max-model-len", "100000", env={"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"})
    assert requests.get(s.url("/v1/models")).json()["data"][0]["max_model_len"] == 100000


def test_dual_stack_host(vlm_env):
    port = free_port()
    p = subprocess.Popen([vlm_env[0], "serve", vlm_env[1], "--host", "::", "--port", str(port)],
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline, ok = time.time() + 30, False
        while time.time() < deadline and not ok:
            try:
                ok = requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except requests.RequestException:
                time.sleep(0.1)
        assert ok
        assert requests.get(f"http://[::1]:{port}/health", timeout=2).status_code == 200
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    assert f"http://[::]:{port}/v1" in err


def test_tls(vlm_env, tmp_path):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    port = free_port()
    p = subprocess.Popen([vlm_env[0], "serve", vlm_env[1], "--host", "127.0.0.1", "--port", str(port),
                          "--ssl-keyfile", str(key), "--ssl-certfile", str(crt)], stderr=subprocess.PIPE, text=True)
    try:
        deadline, r = time.time() + 30, None
        while time.time() < deadline and r is None:
            try:
                r = requests.get(f"https://127.0.0.1:{port}/v1/models", timeout=2, verify=str(crt))
            except requests.RequestException:
                time.sleep(0.1)
        assert r is not None and r.status_code == 200
        body = chat_body(with_image(data_url(png_bytes(16, 16, 3))), max_tokens=4, stream=True)
        body["model"] = r.json()["data"][0]["id"]
        with requests.post(f"https://127.0.0.1:{port}/v1/chat/completions", json=body, verify=str(crt), stream=True) as s:
            lines = [l for l in s.iter_lines() if l]
        assert lines[-1] == b"data: [DONE]"
        with pytest.raises(requests.ConnectionError):   # plain HTTP on the TLS port gets no answer
            requests.get(f"http://127.0.0.1:{port}/health", timeout=3)
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    assert f"https://127.0.0.1:{port}/v1" in err


# 9: the log as vLLM users read it ------------------------------------------------------------

def test_request_log_and_throughput_line(start_server):
    s = start_server(env={"VLLM_LOG_STATS_INTERVAL": "0.5"})
    r = s.post("/v1/chat/completions", chat_body(with_image(data_url(png_bytes(16, 16, 5))), max_tokens=8))
    assert r.status_code == 200
    rid = r.json()["id"]
    time.sleep(1.5)
    s.log.flush()
    s.log.seek(0)
    log = s.log.read()
    line = next(l for l in log.splitlines() if rid in l)
    assert " info: " in line and ": 200, prompt " in line and "output" in line and " s" in line
    assert "Avg prompt throughput" in log and "Running:" in log and "KV cache usage" in log
    assert "kernels" in log and "loaded in" in log and "threads" in log           # the banner


def test_logging_level_env_quiets_requests(start_server):
    s = start_server(env={"VLLM_LOGGING_LEVEL": "WARNING"})
    assert s.post("/v1/chat/completions", chat_body("hi", max_tokens=2)).status_code == 200
    s.log.flush()
    s.log.seek(0)
    assert "chatcmpl" not in s.log.read()


# 10: fields we do not implement are refused, never ignored -----------------------------------

@pytest.mark.parametrize("extra,param", [
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
    ({"guided_json": {"type": "object"}}, "guided_json"),
    ({"guided_regex": "a+"}, "guided_regex"),
    ({"guided_choice": ["a", "b"]}, "guided_choice"),
    ({"guided_grammar": "root ::= 'a'"}, "guided_grammar"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
])
def test_unimplemented_fields_are_refused(server, extra, param):
    err = assert_error(server.post("/v1/chat/completions", chat_body("hi", max_tokens=2, **extra)), 400)
    assert err["param"] == param and "not supported" in err["message"]


def test_noop_values_of_those_fields_are_fine(server):
    ok = chat_body("hi", max_tokens=2, response_format={"type": "text"}, tool_choice="none",
                   tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    assert server.post("/v1/chat/completions", ok).status_code == 200


# 11: the content format follows the template in use ------------------------------------------

def test_string_template_gets_string_content(start_server):
    s = start_server("--chat-template", "{% for m in messages %}<{{ m['content'] }}>{% endfor %}")
    r = s.post("/tokenize", {"messages": [{"role": "user", "content": "hi there"}], "add_generation_prompt": False})
    text = s.post("/detokenize", {"tokens": r.json()["tokens"]}).json()["prompt"]
    assert text == "<hi there>", text


def test_chat_template_command_prints_the_server_prompt(vlm_env, tmp_path, start_server):
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([{"role": "user", "content": "What is shown?"}]))
    p = subprocess.run([vlm_env[0], "chat-template", vlm_env[1], "--messages", str(msgs)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "What is shown?" in p.stdout, p.stdout
    s = start_server()
    r = s.post("/tokenize", {"messages": json.loads(msgs.read_text())})
    assert s.post("/detokenize", {"tokens": r.json()["tokens"]}).json()["prompt"] == p.stdout


# 12: /tokenize return_token_strs -------------------------------------------------------------

def test_tokenize_returns_token_strings(server):
    r = server.post("/tokenize", {"prompt": "hello world", "return_token_strs": True}).json()
    assert len(r["token_strs"]) == len(r["tokens"]) and all(isinstance(t, str) for t in r["token_strs"])
    assert server.post("/tokenize", {"prompt": "hello world"}).json()["token_strs"] is None
