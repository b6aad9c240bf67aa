#!/usr/bin/env python3
"""Download throughput from the Hugging Face hub's protocol on loopback: vlm.c (`vlm pull`) vs
huggingface_hub (`hf_hub_download`), one large LFS file served by the mock hub of the tests
(tests/e2e/mock_hub.py: hub API + a CDN on another port, sendfile), in the same run, rounds
interleaved with alternating order, each into an empty cache.

    flock /work/bench.lock .venv/bin/python scripts/bench_download.py --vlm build/vlm [--size-mb 1024] [--rounds 4]

vlm.c's time is the whole `vlm pull` process (model info, HEADs, transfer, SHA-256 check, links);
huggingface_hub's is the hf_hub_download call alone, timed inside its process (interpreter start
and imports excluded), so the comparison leans towards huggingface_hub. The data file and the
caches live under --work (default /work/models-big/bench-download) and are deleted at the end.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from mock_hub import Blob, MockHub  # noqa: E402

HF_CODE = """
import sys, time
from huggingface_hub import hf_hub_download
t = time.perf_counter()
p = hf_hub_download(sys.argv[1], "model.safetensors", cache_dir=sys.argv[2])
print(time.perf_counter() - t)
"""


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def make_file(path, size):
    block = os.urandom(1 << 24)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
            block = block[1:] + block[:1]   # not one repeated block: defeats nothing, but cheap variety


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vlm", default=os.path.join(ROOT, "build", "vlm"))
    ap.add_argument("--python", default=sys.executable, help="a Python with huggingface_hub")
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--work", default="/work/models-big/bench-download")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    os.makedirs(a.work, exist_ok=True)
    data = os.path.join(a.work, "blob.bin")
    size = a.size_mb << 20
    hub = None
    try:
        make_file(data, size)
        hub = MockHub()
        with open(os.path.join(ROOT, "models", "vlm-demo", "config.json"), "rb") as f:
            cfg = f.read()
        hub.add_repo("bench/big").commit({"config.json": cfg, "model.safetensors": Blob(path=data, lfs=True)})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update({"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                    "HF_HOME": os.path.join(a.work, "hfhome")})
        times = {"vlm.c": [], "huggingface_hub": []}
        loads = []
        for r in range(a.rounds):
            order = ["vlm.c", "huggingface_hub"] if r % 2 == 0 else ["huggingface_hub", "vlm.c"]
            for tool in order:
                cache = os.path.join(a.work, "cache")
                shutil.rmtree(cache, ignore_errors=True)
                loads.append(loadavg())
                if tool == "vlm.c":
                    t = time.perf_counter()
                    p = subprocess.run([a.vlm, "pull", "bench/big", "--download-dir", cache], env=env,
                                       capture_output=True, text=True)
                    dt = time.perf_counter() - t
                    if p.returncode:
                        sys.exit("vlm pull failed: " + p.stderr)
                else:
                    p = subprocess.run([a.python, "-c", HF_CODE, "bench/big", cache], env=env, capture_output=True, text=True)
                    if p.returncode:
                        sys.exit("hf_hub_download failed: " + p.stderr[-2000:])
                    dt = float(p.stdout.split()[-1])
                blob = [f for f in os.listdir(os.path.join(cache, "models--bench--big", "blobs"))
                        if os.path.getsize(os.path.join(cache, "models--bench--big", "blobs", f)) == size]
                assert blob, "the downloaded blob is missing"
                times[tool].append(dt)
                print(f"round {r + 1} {tool:16s} {size / dt / 1e6:8.1f} MB/s  ({dt:.2f} s, load {loads[-1]})", flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        mbps = {k: size / v / 1e6 for k, v in med.items()}
        print(f"median over {a.rounds} rounds, {a.size_mb} MiB: vlm.c {mbps['vlm.c']:.1f} MB/s, huggingface_hub "
              f"{mbps['huggingface_hub']:.1f} MB/s, ratio {mbps['vlm.c'] / mbps['huggingface_hub']:.2f}x")
        per_round = [h / v for v, h in zip(times["vlm.c"], times["huggingface_hub"])]
        print("per-round speed ratio vlm.c / huggingface_hub: " + " ".join(f"{x:.2f}" for x in per_round))
        if a.json:
            print(json.dumps({"size": size, "times": times, "loadavg": loads}))
    finally:
        if hub:
            hub.close()
        shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    main()
