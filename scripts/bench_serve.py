#!/usr/bin/env python3
"""bench_serve.py — throughput and latency of `vlm serve` at 1, 4 and 16 concurrent clients,
each request carrying one image (streamed chat completions, greedy, fixed output length).

Prints per concurrency: aggregate decode tokens/s (tokens after each request's first one, over
the time during which any request was decoding), generated tokens / wall time (image encoding
and prefill included),
TTFT p50/p99 and inter-token latency p50/p99, then the 16-vs-1 aggregate decode ratio (what
continuous batching buys: one pass over the weights serves every live sequence).

  scripts/bench_serve.py --model /work/models-big/smolvlm-256m-random [--bin build/vlm]
  scripts/bench_serve.py --url http://127.0.0.1:8000     # an already running server

Stdlib only (http.client), so it runs anywhere Python 3 does.
"""
import argparse
import base64
import http.client
import json
import os
import shlex
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def png(w, h, seed):
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            rows += bytes(((x * 7 + seed * 13) % 256, (y * 5 + seed) % 256, (x ^ y ^ seed) % 256))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b""))


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def one_request(url, model, image, max_tokens, out):
    u = urllib.parse.urlparse(url)
    body = json.dumps({"model": model, "stream": True, "temperature": 0, "max_tokens": max_tokens,
                       "ignore_eos": True, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": [
                           {"type": "text", "text": "What is shown in the image?"},
                           {"type": "image_url", "image_url": {"url": image}}]}]})
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]}")
    stamps, usage = [], None
    for line in r:
        if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
            continue
        j = json.loads(line[6:])
        if "error" in j:
            raise RuntimeError(j["error"])
        if j.get("usage"):
            usage = j["usage"]
        for ch in j["choices"]:
            if ch["delta"].get("content") or ch.get("logprobs"):
                stamps.append(time.perf_counter())
    t1 = time.perf_counter()
    conn.close()
    out.append({"t0": t0, "t1": t1, "first": stamps[0] if stamps else t1, "last": stamps[-1] if stamps else t1,
                "n_stamps": len(stamps), "ttft": (stamps[0] - t0) if stamps else float("nan"),
                "itl": [b - a for a, b in zip(stamps, stamps[1:])],
                "tokens": usage["completion_tokens"] if usage else len(stamps),
                "prompt_tokens": usage["prompt_tokens"] if usage else 0})


def run_level(url, model, clients, requests_each, max_tokens, size, same):
    res, errs = [], []
    # distinct images are new to each level too: one cached from an earlier level would start
    # decoding while the others are still being encoded
    images = [f"data:image/png;base64,{base64.b64encode(png(size, size, 0 if same else 1000 * clients + c)).decode()}"
              for c in range(clients)]

    def worker(c):
        try:
            for k in range(requests_each):
                one_request(url, model, images[c], max_tokens, res)
        except Exception as e:  # noqa: BLE001  (reported below)
            errs.append(repr(e))

    ths = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.perf_counter() - t0
    if errs:
        raise RuntimeError(errs[0])
    toks = sum(r["tokens"] for r in res)
    itl = [x for r in res for x in r["itl"]]
    ttft = [r["ttft"] for r in res]
    # decode throughput: tokens after each request's first, over the time any request was decoding
    spans, busy, end = sorted((r["first"], r["last"]) for r in res), 0.0, float("-inf")
    for a0, a1 in spans:
        if a0 > end:
            busy += a1 - a0
            end = a1
        elif a1 > end:
            busy += a1 - end
            end = a1
    # tokens, not text chunks: a token whose text is empty (a special token, half a UTF-8
    # character) sends no chunk, and a random-weight model makes many of those
    dec = sum(max(0, r["tokens"] - 1) for r in res)
    return {"clients": clients, "requests": len(res), "wall_s": wall, "decode_tok_s": dec / busy if busy > 0 else 0.0,
            "total_tok_s": toks / wall,
            "ttft_p50": pct(ttft, 50), "ttft_p99": pct(ttft, 99), "itl_p50": pct(itl, 50), "itl_p99": pct(itl, 99),
            "prompt_tokens": res[0]["prompt_tokens"] if res else 0,
            # per request, seconds from the level's start: sent, first and last token; tokens
            "per_request": [{"sent": r["t0"] - t0, "first": r["first"] - t0, "last": r["last"] - t0,
                             "tokens": r["tokens"]} for r in sorted(res, key=lambda r: r["first"])]}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server (else one is started)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "vlm-demo"), help="model folder to serve")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "vlm"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--requests", type=int, default=2, help="requests per client per level")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--same-image", action="store_true", help="every client sends the same image (cache hits)")
    ap.add_argument("--no-image-splitting", action="store_true",
                    help="serve with --mm-processor-kwargs '{\"do_image_splitting\":false}' (one tile per image)")
    ap.add_argument("--server-args", default="", help="extra `vlm serve` flags (shell-quoted)")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    proc = None
    url = a.url
    if not url:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [a.bin, "serve", a.model, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "bench",
               "--max-num-seqs", "16"] + (["--threads", str(a.threads)] if a.threads else []) + shlex.split(a.server_args)
        if a.no_image_splitting:
            cmd += ["--mm-processor-kwargs", json.dumps({"do_image_splitting": False})]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sys.stderr)
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            proc.kill()
            sys.exit("server did not start")
    model = "bench" if proc else json.loads(urllib.request.urlopen(url + "/v1/models").read())["data"][0]["id"]
    try:
        one_request(url, model, f"data:image/png;base64,{base64.b64encode(png(a.image_size, a.image_size, 99)).decode()}",
                    4, [])                                             # warm-up
        rows = []
        print(f"{'clients':>7} {'reqs':>5} {'decode tok/s':>13} {'tok/s wall':>11} {'TTFT p50':>9} {'TTFT p99':>9} "
              f"{'ITL p50':>8} {'ITL p99':>8}  (prompt tokens/request incl. image)")
        for lv in [int(x) for x in a.levels.split(",")]:
            r = run_level(url, model, lv, a.requests, a.max_tokens, a.image_size, a.same_image)
            rows.append(r)
            print(f"{r['clients']:>7} {r['requests']:>5} {r['decode_tok_s']:>13.1f} {r['total_tok_s']:>11.1f} {r['ttft_p50']*1e3:>7.0f}ms "
                  f"{r['ttft_p99']*1e3:>7.0f}ms {r['itl_p50']*1e3:>6.1f}ms {r['itl_p99']*1e3:>6.1f}ms  ({r['prompt_tokens']})",
                  flush=True)
        lv = {r["clients"]: r for r in rows}
        if 1 in lv and max(lv) > 1:
            hi = max(lv)
            print(f"aggregate decode {hi} vs 1 clients: {lv[hi]['decode_tok_s'] / lv[1]['decode_tok_s']:.2f}x")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(rows, f, indent=1)
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
