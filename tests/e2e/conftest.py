"""Fixtures for the end-to-end tests: the real `vlm serve` binary on a free 127.0.0.1 port with
a small model, a local web server for image URLs, and small images made here (stdlib only).

VLM_BIN names the binary (the Makefile sets it); VLM_E2E_MODEL may name the model folder.
Without either a built binary or a usable model the tests are skipped with the reason."""
import base64
import http.server
import json
import os
import socket
import struct
import subprocess
import threading
import time
import zlib

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _usable_model(d):
    has = lambda f: os.path.isfile(os.path.join(d, f))
    weights = has("model.safetensors") or any(
        f.endswith(".safetensors") for f in (os.listdir(d) if os.path.isdir(d) else []))
    return has("config.json") and has("tokenizer.json") and weights


def find_model():
    env = os.environ.get("VLM_E2E_MODEL")
    if env:
        return env if _usable_model(env) else None
    cands = [os.path.join(ROOT, "models", "vlm-demo"), os.path.join(ROOT, "tests", "fixtures", "server", "tiny-vlm")]
    fx = os.path.join(ROOT, "tests", "fixtures", "models")
    if os.path.isdir(fx):
        cands += [os.path.join(fx, d) for d in sorted(os.listdir(fx))]
    for d in cands:
        if _usable_model(d):
            return d
    return None


def find_bin():
    b = os.environ.get("VLM_BIN") or os.path.join(ROOT, "build", "vlm")
    return b if os.path.isfile(b) and os.access(b, os.X_OK) else None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---- images (stdlib PNG writer) ----

def png_bytes(w, h, seed=0):
    rows = b""
    for y in range(h):
        row = bytearray([0])
        for x in range(w):
            row += bytes([(x * 7 + seed * 31) % 256, (y * 5 + seed * 17) % 256, ((x + y) * 3 + seed) % 256])
        rows += bytes(row)

    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_header_only(w, h):
    """A ~60-byte PNG that declares w x h pixels (a decompression bomb's header)."""
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def data_url(b, mime="image/png"):
    return f"data:{mime};base64,{base64.b64encode(b).decode()}"


# ---- the local web server for image URLs ----

class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}

    def log_message(self, *a):
        pass

    def do_GET(self):
        r = self.routes.get(self.path.split("?")[0])
        if r is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        kind, val = r
        try:
            if kind == "bytes":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(val)))
                self.end_headers()
                self.wfile.write(val)
            elif kind == "redirect":
                self.send_response(302)
                self.send_header("Location", val)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif kind == "gzip":
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(val)))
                self.end_headers()
                self.wfile.write(val)
            elif kind == "endless":      # no Content-Length, far more than any cap
                self.send_response(200)
                self.end_headers()
                block = b"\0" * 65536
                for _ in range(val):
                    self.wfile.write(block)
            elif kind == "slow":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(val):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(1)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="session")
def image_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    port = srv.server_address[1]
    _Handler.routes.update({
        "/cat.png": ("bytes", png_bytes(40, 30, 1)),
        "/redirect-ok": ("redirect", "/cat.png"),
        "/redirect-ip": ("redirect", f"http://127.0.0.1:{port}/cat.png"),
        "/redirect-meta": ("redirect", "http://169.254.169.254/latest/meta-data/"),
        "/redirect-loop": ("redirect", "/redirect-loop"),
        "/gzip.png": ("gzip", zlib.compress(png_bytes(40, 30, 1))),
        "/endless": ("endless", 2000),
        "/slow": ("slow", 30),
    })
    yield f"http://127.0.0.1:{port}"
    srv.shutdown()


# ---- the server under test ----

class Server:
    def __init__(self, bin_path, model, args, env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.model = model
        e = dict(os.environ)
        e.update(env or {})
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"vlm-serve-{self.port}.log"), "w+")
        self.proc = subprocess.Popen([bin_path, "serve", model, "--host", "127.0.0.1", "--port", str(self.port),
                                      "--served-model-name", "test-model", "--threads", "2"] + list(args),
                                     stdout=self.log, stderr=subprocess.STDOUT, env=e)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError("vlm serve exited: " + self.log.read()[-2000:])
            try:
                if requests.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("vlm serve did not become healthy")

    def url(self, p):
        return self.base + p

    def post(self, path, body, **kw):
        if isinstance(body, (dict, list)):
            return requests.post(self.url(path), json=body, timeout=kw.pop("timeout", 120), **kw)
        return requests.post(self.url(path), data=body, timeout=kw.pop("timeout", 120),
                             headers={"Content-Type": "application/json"}, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def vlm_env():
    b, m = find_bin(), find_model()
    if not b:
        pytest.skip("no vlm binary: build it (make build) or set VLM_BIN")
    if not m:
        pytest.skip("no model with config.json + tokenizer.json + weights in models/vlm-demo or "
                    "tests/fixtures/models/ (set VLM_E2E_MODEL)")
    return b, m


@pytest.fixture(scope="session")
def start_server(vlm_env):
    started = []

    def start(*args, env=None):
        s = Server(vlm_env[0], vlm_env[1], args, env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def server(start_server):
    """The default server: no private addresses, no local files, 3 images per prompt."""
    return start_server("--limit-mm-per-prompt", json.dumps({"image": 3}))
