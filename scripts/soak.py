#!/usr/bin/env python3
"""soak.py — `vlm serve` under sustained hostile load, on loopback only: N clients mixing valid
requests (checked against the answer the server gave at rest) with bad ones (each must get its
4xx), random cancellations of streams, one client hoarding hundreds of half-open connections
(from 127.0.0.2), slowloris clients trickling bytes (from 127.0.0.3), and a /health probe every
0.2 s from 127.0.0.1. Passes when every valid request was answered right, every bad one got a
4xx, no 5xx, /health always answered within 1 s, and RSS grew by less than 10% from the end of
a warm-up under the full load (the first quarter of the run, at most 30 s) to the end of the run:
memory that keeps growing under steady load is a leak, a one-off rise to the load's working set
(connection threads, allocator arenas) is not.

  python3 scripts/soak.py --bin build/vlm [--model models/vlm-demo] [--seconds 120]
         [--clients 16] [--hoard 600] [--slowloris 20]

Bounded: every loop stops at --seconds (plus a few seconds to drain); it needs only the stdlib
and requests."""
import argparse
import base64
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def chat(image_b64, text="What is shown in the image?", **kw):
    body = {"model": "soak", "temperature": 0, "max_tokens": 24, "messages": [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + image_b64}}]}]}
    body.update(kw)
    return body


# Bad requests, each with the status class it must get (raw bytes go over a socket).
BAD_JSON = [
    (b"{not json", 400), (b"[]", 400), (json.dumps({"model": "soak", "messages": []}).encode(), 400),
    (json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}).encode(), 404),
    (json.dumps({"model": "soak", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}).encode(), 400),
    (json.dumps({"model": "soak", "messages": [{"role": "user", "content": "x"}], "n": 10 ** 30}).encode(), 400),
    (json.dumps({"model": "soak", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}).encode(), 400),
    (json.dumps({"model": "soak", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/x.png"}}]}]}).encode(), 400),
    (json.dumps({"model": "soak", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}).encode(), 400),
    (json.dumps({"model": "soak", "messages": [{"role": "user", "content": "x"}],
                 "response_format": {"type": "json_object"}}).encode(), 400),
    (b"{" + b'"a":' * 100000 + b"1" + b"}" * 100000, 400),
]
BAD_RAW = [
    b"\x00\x01\x02 GARBAGE \xff\xfe\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
    b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = self.wrong = self.bad_ok = self.bad_wrong = self.s5xx = self.cancelled = 0
        self.health_max = 0.0
        self.health_fail = 0
        self.notes = []

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def note(self, s):
        with self.lock:
            if len(self.notes) < 20:
                self.notes.append(s)


def raw(port, data, src=None, timeout=10):
    s = socket.socket()
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError:
        pass
    s.close()
    return out


def client(i, base, port, images, expected, end, st):
    rng = random.Random(i)
    sess = requests.Session()
    while time.time() < end:
        k = rng.random()
        try:
            if k < 0.5:                      # valid, whole
                img = rng.randrange(len(images))
                r = sess.post(base + "/v1/chat/completions", json=chat(images[img]), timeout=120)
                if r.status_code >= 500:
                    st.add(s5xx=1)
                if r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == expected[img]:
                    st.add(ok=1)
                else:
                    st.add(wrong=1)
                    st.note(f"valid request: {r.status_code} {r.text[:200]}")
            elif k < 0.65:                   # valid, streamed, sometimes cancelled mid-way
                img = rng.randrange(len(images))
                cancel = rng.random() < 0.5
                with sess.post(base + "/v1/chat/completions", json=chat(images[img], stream=True), stream=True,
                               timeout=120) as r:
                    text, done = "", False
                    for line in r.iter_lines():
                        if not line:
                            continue
                        if cancel:
                            st.add(cancelled=1)
                            break
                        if line == b"data: [DONE]":
                            done = True
                            break
                        ev = json.loads(line[6:])
                        if "error" in ev:
                            break
                        text += ev["choices"][0]["delta"].get("content") or ""
                    if not cancel:
                        if done and text == expected[img]:
                            st.add(ok=1)
                        else:
                            st.add(wrong=1)
                            st.note(f"stream: done={done} {text!r}")
            elif k < 0.85:                   # bad JSON
                body, want = BAD_JSON[rng.randrange(len(BAD_JSON))]
                r = sess.post(base + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"},
                              timeout=60)
                if r.status_code >= 500:
                    st.add(s5xx=1)
                if r.status_code == want and "error" in r.json():
                    st.add(bad_ok=1)
                else:
                    st.add(bad_wrong=1)
                    st.note(f"bad request got {r.status_code}, want {want}: {r.text[:120]}")
            else:                            # broken HTTP
                out = raw(port, BAD_RAW[rng.randrange(len(BAD_RAW))])
                code = int(out.split(b" ")[1]) if out.startswith(b"HTTP/1.") else 0
                if code >= 500 and code != 505 and code != 501:
                    st.add(s5xx=1)
                if 400 <= code < 600 and b"application/json" in out:
                    st.add(bad_ok=1)
                else:
                    st.add(bad_wrong=1)
                    st.note(f"broken HTTP got {out[:120]!r}")
        except requests.RequestException as e:
            st.add(wrong=1)
            st.note(f"client {i}: {type(e).__name__}: {e}")


def hoarder(port, n, end):
    socks = []
    while time.time() < end:
        while len(socks) < n and time.time() < end:
            c = socket.socket()
            try:
                c.bind(("127.0.0.2", 0))
                c.settimeout(2)
                c.connect(("127.0.0.1", port))
                c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
                c.setblocking(False)
                socks.append(c)
            except OSError:
                c.close()
                break
        time.sleep(0.5)
        alive = []
        for c in socks:   # the server cuts them at its head deadline; open new ones
            try:
                if c.recv(1, socket.MSG_PEEK) == b"":
                    c.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                c.close()
                continue
            alive.append(c)
        socks = alive
    for c in socks:
        c.close()


def slowloris(port, end, i):
    while time.time() < end:
        c = socket.socket()
        try:
            c.bind(("127.0.0.3", 0))
            c.settimeout(2)
            c.connect(("127.0.0.1", port))
            c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" if i % 2 else
                      b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            while time.time() < end:
                c.sendall(b"x")
                time.sleep(1.0)
        except OSError:
            pass
        finally:
            c.close()


def health(base, end, st):
    while time.time() < end:
        t0 = time.time()
        try:
            ok = requests.get(base + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            ok = False
        dt = time.time() - t0
        with st.lock:
            st.health_max = max(st.health_max, dt)
            if not ok or dt >= 1.0:
                st.health_fail += 1
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "vlm"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "vlm-demo"))
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--hoard", type=int, default=600)
    ap.add_argument("--slowloris", type=int, default=20)
    a = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"soak-{port}.log"), "w+")
    proc = subprocess.Popen([a.bin, "serve", a.model, "--host", "127.0.0.1", "--port", str(port),
                             "--served-model-name", "soak", "--request-header-timeout", "5",
                             "--request-body-timeout", "5", "--disable-log-requests"], stdout=log, stderr=log)
    try:
        for _ in range(300):
            try:
                if requests.get(base + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        scenes = [os.path.join(ROOT, "tests", "fixtures", "scenes", f"scene_00{i}.png") for i in range(4)]
        images = [base64.b64encode(open(p, "rb").read()).decode() for p in scenes]
        expected = [requests.post(base + "/v1/chat/completions", json=chat(im), timeout=120).json()
                    ["choices"][0]["message"]["content"] for im in images]
        for _ in range(2):   # warm the image cache and the allocator before the first RSS reading
            for im in images:
                requests.post(base + "/v1/chat/completions", json=chat(im), timeout=120)
        rss_idle = rss_kb(proc.pid)
        st = Stats()
        end = time.time() + a.seconds
        threads = [threading.Thread(target=health, args=(base, end, st))]
        threads += [threading.Thread(target=hoarder, args=(port, a.hoard, end))] if a.hoard else []
        threads += [threading.Thread(target=slowloris, args=(port, end, i)) for i in range(a.slowloris)]
        threads += [threading.Thread(target=client, args=(i, base, port, images, expected, end, st))
                    for i in range(a.clients)]
        for t in threads:
            t.start()
        time.sleep(min(30.0, a.seconds / 4))
        rss0 = rss_kb(proc.pid)
        time.sleep(max(0.0, end - time.time() - 0.5))
        rss1 = rss_kb(proc.pid)   # still under the full load
        for t in threads:
            t.join(a.seconds + 120)
        time.sleep(1)
        rss_after = rss_kb(proc.pid)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    growth = (rss1 - rss0) / rss0 if rss0 else 0
    print(f"soak {a.seconds:.0f} s, {a.clients} clients, {a.hoard} half-open, {a.slowloris} slowloris: "
          f"valid right {st.ok}, valid wrong {st.wrong}, bad -> 4xx {st.bad_ok}, bad other {st.bad_wrong}, "
          f"5xx {st.s5xx}, cancelled streams {st.cancelled}, /health worst {st.health_max * 1e3:.0f} ms "
          f"(late or failed {st.health_fail}), RSS idle {rss_idle // 1024} MiB, under load {rss0 // 1024} -> "
          f"{rss1 // 1024} MiB ({growth * 100:+.1f}%), after {rss_after // 1024} MiB")
    for n in st.notes:
        print("  " + n)
    ok = alive and st.wrong == 0 and st.bad_wrong == 0 and st.s5xx == 0 and st.health_fail == 0 and growth < 0.10 \
        and st.ok > 0 and st.bad_ok > 0
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
