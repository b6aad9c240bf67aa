"""Models by name (issue 11): `vlm pull` / `vlm serve org/name` against a mock hub on 127.0.0.1
(tests/e2e/mock_hub.py), and the shared cache read and written by the real huggingface_hub and
transformers (both pointed at the mock with HF_ENDPOINT)."""
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from conftest import ROOT, Server, find_bin
from mock_hub import Blob, MockHub

DEMO = os.path.join(ROOT, "models", "vlm-demo")
TOKEN = "hf_mockgoodtoken"
PIECE = 1 << 20


def _config(arch):
    with open(os.path.join(DEMO, "config.json")) as f:
        c = json.load(f)
    c["architectures"] = [arch]
    return json.dumps(c).encode()


@pytest.fixture(scope="module")
def vlm():
    b = find_bin()
    if not b:
        pytest.skip("no vlm binary: build it (make build) or set VLM_BIN")
    return b


@pytest.fixture(scope="module")
def hub():
    h = MockHub()
    h.main = h.publish_folder("test/vlm-demo", DEMO, refs=("main", "v1.0"))
    files = {n: open(os.path.join(DEMO, n), "rb").read() for n in os.listdir(DEMO)
             if os.path.isfile(os.path.join(DEMO, n)) and n not in ("README.md", "example.png")}
    files["generation_config.json"] = b'{"bos_token_id": 1, "eos_token_id": 2, "_from": "dev"}'
    h.dev = h.repos["test/vlm-demo"].commit(files, refs=("dev",))
    h.publish_folder("test/gated", DEMO, gated=True, tokens=(TOKEN,))
    big = os.urandom(6 * PIECE + 12345)
    h.big = Blob(big)
    h.add_repo("test/big").commit({"config.json": _config("Idefics3ForConditionalGeneration"), "model.safetensors": h.big,
                                   "README.md": b"not fetched"})
    huge = Blob(b"\0" * 1000)
    huge.announce = 1 << 60   # a file larger than any disk: the space check must refuse it up front
    h.add_repo("test/huge").commit({"config.json": _config("Idefics3ForConditionalGeneration"), "model.safetensors": huge})
    h.add_repo("test/bin").commit({"config.json": _config("Idefics3ForConditionalGeneration"), "pytorch_model.bin": b"x" * 100})
    h.add_repo("test/llama").commit({"config.json": _config("LlamaForCausalLM"), "model.safetensors": os.urandom(3 * PIECE)})
    yield h
    h.close()


@pytest.fixture
def env(tmp_path, hub):
    hub.clear_log()
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
    e.update({"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hfhome"), "HOME": str(tmp_path),
              "HF_ENDPOINT": hub.endpoint, "VLM_HUB_PIECE_BYTES": str(PIECE), "HF_HUB_DOWNLOAD_TIMEOUT": "5"})
    return e


def run(vlm, args, env, timeout=60):
    return subprocess.run([vlm] + args, env=env, capture_output=True, text=True, timeout=timeout)


def repo_dir(env, repo_id):
    return os.path.join(env["HF_HUB_CACHE"], "models--" + repo_id.replace("/", "--"))


def test_pull_into_empty_cache_then_second_run_downloads_nothing(vlm, hub, env):
    r = run(vlm, ["pull", "test/vlm-demo"], env)
    assert r.returncode == 0, r.stderr
    rd = repo_dir(env, "test/vlm-demo")
    snap = os.path.join(rd, "snapshots", hub.main)
    assert r.stdout.strip() == snap
    assert open(os.path.join(rd, "refs", "main")).read() == hub.main   # no newline, as huggingface_hub
    tree = hub.repos["test/vlm-demo"].commits[hub.main]
    assert sorted(os.listdir(snap)) == sorted(tree)
    for name, blob in tree.items():
        link = os.path.join(snap, name)
        etag = blob.sha256 if blob.is_lfs(name) else blob.git
        assert os.readlink(link) == "../../blobs/" + etag
        with open(link, "rb") as f:
            assert f.read() == blob.data
    assert not [f for f in os.listdir(os.path.join(rd, "blobs")) if "incomplete" in f]
    # the model files the repo lacks are recorded as huggingface_hub records a 404
    assert sorted(os.listdir(os.path.join(rd, ".no_exist", hub.main))) == [
        "added_tokens.json", "chat_template.json", "special_tokens_map.json"]
    cdn = hub.requests("cdn")
    assert len(cdn) == 12 and all(e["range"] for e in cdn)   # 12 MiB in 1 MiB pieces
    assert not any(e["auth"] for e in hub.requests())
    assert "downloaded model.safetensors (11.6 MiB" in r.stderr

    hub.clear_log()
    r = run(vlm, ["pull", "test/vlm-demo"], env)
    assert r.returncode == 0 and r.stdout.strip() == snap, r.stderr
    assert [e["path"] for e in hub.requests()] == ["/api/models/test/vlm-demo/revision/main"]

    r = run(vlm, ["ls"], env)
    assert r.returncode == 0 and run(vlm, ["list"], env).stdout == r.stdout
    row = [l for l in r.stdout.splitlines() if l.startswith("test/vlm-demo")]
    assert len(row) == 1 and row[0].split()[1] == "main", r.stdout
    assert "11.7 MiB" in row[0] and "yes (Idefics3ForConditionalGeneration)" in row[0]


def _wait_for(pred, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("pieces", [False, True], ids=["one-stream", "pieces"])
def test_killed_transfer_resumes_from_incomplete(vlm, hub, env, pieces):
    if not pieces:
        env["VLM_HUB_PIECE_BYTES"] = str(1 << 30)
    hub.set_fault(hub.big.sha256, "stall", count=100)
    blobs = os.path.join(repo_dir(env, "test/big"), "blobs")
    inc = os.path.join(blobs, hub.big.sha256 + ".incomplete")
    p = subprocess.Popen([vlm, "pull", "test/big"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        half = hub.big.size // 2 if not pieces else hub.big.size // 2 - PIECE
        assert _wait_for(lambda: os.path.exists(inc) and os.path.getsize(inc) >= half), "no partial file"
        time.sleep(0.3)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert not os.path.exists(os.path.join(blobs, hub.big.sha256))
    assert not os.path.lexists(os.path.join(repo_dir(env, "test/big"), "snapshots", hub.repos["test/big"].refs["main"],
                                            "model.safetensors"))
    assert os.path.exists(inc + ".parts") == pieces
    if pieces:   # what the progress file vouches for: 64-byte head, then bytes done per piece
        with open(inc + ".parts", "rb") as f:
            raw = f.read()
        kept = sum(int(raw[64 + 21 * k:64 + 21 * k + 20]) for k in range((len(raw) - 64) // 21))
    else:
        kept = os.path.getsize(inc)
    assert kept >= PIECE
    hub.set_fault(hub.big.sha256, "none", count=0)
    hub.clear_log()
    r = run(vlm, ["pull", "test/big"], env)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(r.stdout.strip(), "model.safetensors"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == hub.big.sha256
    ranges = [e["range"] for e in hub.requests("cdn")]
    assert ranges and all(ranges), ranges
    spans = [(int(a), int(b) + 1 if b else hub.big.size) for a, b in (x[6:].split("-") for x in ranges)]
    assert sum(b - a for a, b in spans) == hub.big.size - kept, ranges   # only what was missing travelled
    assert "resumed" in r.stderr
    assert not os.path.exists(inc) and not os.path.exists(inc + ".parts")


def test_cut_connection_is_resumed_within_the_run(vlm, hub, env):
    env["VLM_HUB_PIECE_BYTES"] = str(1 << 30)
    hub.set_fault(hub.big.sha256, "cut", count=1)
    r = run(vlm, ["pull", "test/big"], env)
    assert r.returncode == 0, r.stderr
    ranges = [e["range"] for e in hub.requests("cdn")]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1] == f"bytes={hub.big.size // 2}-", ranges


def test_a_transfer_that_keeps_breaking_says_how_to_resume(vlm, hub, env):
    env["VLM_HUB_PIECE_BYTES"] = str(1 << 30)
    hub.set_fault(hub.big.sha256, "cut", count=100)
    r = run(vlm, ["pull", "test/big"], env)
    hub.set_fault(hub.big.sha256, "none", count=0)
    assert r.returncode == 1
    assert "transfer of model.safetensors interrupted" in r.stderr and "run the same command again to resume" in r.stderr, r.stderr
    inc = os.path.join(repo_dir(env, "test/big"), "blobs", hub.big.sha256 + ".incomplete")
    assert os.path.getsize(inc) > hub.big.size // 2
    r = run(vlm, ["pull", "test/big"], env)
    assert r.returncode == 0 and "resumed" in r.stderr, r.stderr


def test_corrupted_blob_is_refused(vlm, hub, env):
    hub.set_fault(hub.big.sha256, "corrupt", count=100)
    r = run(vlm, ["pull", "test/big"], env)
    hub.set_fault(hub.big.sha256, "none", count=0)
    assert r.returncode == 1
    assert "checksum mismatch for model.safetensors" in r.stderr and hub.big.sha256 in r.stderr, r.stderr
    rd = repo_dir(env, "test/big")
    assert [f for f in os.listdir(os.path.join(rd, "blobs")) if f.startswith(hub.big.sha256)] == []
    snap = os.path.join(rd, "snapshots", hub.repos["test/big"].refs["main"])
    assert not os.path.lexists(os.path.join(snap, "model.safetensors"))
    r = run(vlm, ["pull", "test/big"], env)
    assert r.returncode == 0, r.stderr


def test_offline_uses_the_cache_and_fails_clearly_without_it(vlm, hub, env):
    off = dict(env, HF_HUB_OFFLINE="1")
    r = run(vlm, ["inspect", "test/vlm-demo"], off)
    assert r.returncode == 1
    assert "test/vlm-demo (revision main) is not in the cache" in r.stderr and "refs/main" in r.stderr, r.stderr
    assert "HF_HUB_OFFLINE" in r.stderr and "vlm pull test/vlm-demo" in r.stderr
    assert hub.requests() == []
    assert run(vlm, ["pull", "test/vlm-demo"], env).returncode == 0
    hub.clear_log()
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        r = run(vlm, ["inspect", "test/vlm-demo"], dict(env, **{var: "1"}))
        assert r.returncode == 0 and "Idefics3ForConditionalGeneration" in r.stdout, r.stderr
    r = run(vlm, ["inspect", "test/vlm-demo", "--revision", "dev"], off)
    assert r.returncode == 1 and "refs/dev" in r.stderr
    assert hub.requests() == []


def test_gated_repo_needs_a_token(vlm, hub, env):
    r = run(vlm, ["pull", "test/gated"], env)
    assert r.returncode == 1
    assert f"accept its license on {hub.endpoint}/test/gated" in r.stderr and "HF_TOKEN" in r.stderr, r.stderr
    r = run(vlm, ["pull", "test/gated", "--hf-token", "hf_wrong"], env)
    assert r.returncode == 1 and "gated" in r.stderr and "belongs to that account" in r.stderr, r.stderr
    hub.clear_log()
    r = run(vlm, ["pull", "test/gated"], dict(env, HF_TOKEN=TOKEN))
    assert r.returncode == 0, r.stderr
    assert all(e["auth"] == "Bearer " + TOKEN for e in hub.requests("hub"))
    assert hub.requests("cdn") and not any(e["auth"] for e in hub.requests("cdn"))   # never sent off the hub
    os.makedirs(env["HF_HOME"], exist_ok=True)
    with open(os.path.join(env["HF_HOME"], "token"), "w") as f:
        f.write(TOKEN + "\n")
    r = run(vlm, ["pull", "test/gated", "--download-dir", env["HF_HUB_CACHE"] + "2"], env)
    assert r.returncode == 0 and r.stdout.startswith(env["HF_HUB_CACHE"] + "2/models--test--gated/"), r.stderr


def test_revision_by_branch_tag_and_commit(vlm, hub, env):
    out = {}
    for rev in ("dev", "v1.0", hub.dev):
        r = run(vlm, ["pull", "test/vlm-demo", "--revision", rev], env)
        assert r.returncode == 0, r.stderr
        out[rev] = r.stdout.strip()
    assert out["dev"].endswith("/snapshots/" + hub.dev) and out[hub.dev] == out["dev"]
    assert out["v1.0"].endswith("/snapshots/" + hub.main)
    with open(os.path.join(out["dev"], "generation_config.json")) as f:
        assert json.load(f)["_from"] == "dev"
    refs = os.path.join(repo_dir(env, "test/vlm-demo"), "refs")
    assert sorted(os.listdir(refs)) == ["dev", "v1.0"]
    assert open(os.path.join(refs, "dev")).read() == hub.dev
    # the second snapshot shares every unchanged blob: only generation_config.json was fetched
    blobs = os.listdir(os.path.join(repo_dir(env, "test/vlm-demo"), "blobs"))
    assert len(blobs) == len(hub.repos["test/vlm-demo"].commits[hub.main]) + 1
    r = run(vlm, ["pull", "test/vlm-demo", "--revision", "nope"], env)
    assert r.returncode == 1 and "revision not found" in r.stderr, r.stderr
    r = run(vlm, ["pull", "test/missing"], env)
    assert r.returncode == 1 and "repository test/missing not found" in r.stderr, r.stderr


def test_unsupported_architecture_is_refused_before_weights(vlm, hub, env):
    r = run(vlm, ["pull", "test/llama"], env)
    assert r.returncode == 1
    assert "architecture LlamaForCausalLM is not one vlm.c runs" in r.stderr, r.stderr
    assert hub.requests("cdn") == []
    fetched = [(e["method"], e["path"].rsplit("/", 1)[-1]) for e in hub.requests("hub") if "/resolve/" in e["path"]]
    assert fetched == [("HEAD", "config.json"), ("GET", "config.json")]
    hub.clear_log()
    r = run(vlm, ["pull", "test/bin"], env)
    assert r.returncode == 1 and "no safetensors weights (only PyTorch .bin/.pt files)" in r.stderr, r.stderr
    assert [e["path"] for e in hub.requests()] == ["/api/models/test/bin/revision/main"]


def _python_with(*mods):
    for m in mods:
        if subprocess.run([sys.executable, "-c", f"import {m}"], capture_output=True).returncode:
            pytest.skip(f"{m} is not installed (scripts/requirements-test.txt)")
    return sys.executable


def _ask_readme_question(base):
    with open(os.path.join(DEMO, "example.png"), "rb") as f:
        data = base64.b64encode(f.read()).decode()
    body = {"temperature": 0, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is shown in the image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + data}}]}]}
    r = requests.post(base + "/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_huggingface_hub_and_transformers_read_what_vlm_wrote(vlm, hub, env):
    py = _python_with("huggingface_hub", "transformers")
    r = run(vlm, ["pull", "test/vlm-demo"], env)
    assert r.returncode == 0, r.stderr
    code = ("from huggingface_hub import snapshot_download\n"
            "print(snapshot_download('test/vlm-demo', local_files_only=True))\n"
            "from transformers import AutoConfig, AutoProcessor\n"
            "print(AutoConfig.from_pretrained('test/vlm-demo').architectures[0])\n"
            "p = AutoProcessor.from_pretrained('test/vlm-demo')\n"
            "print(type(p).__name__, p.image_processor.size)\n")
    hub.clear_log()
    out = subprocess.run([py, "-c", code], env=dict(env, HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == r.stdout.strip()
    assert lines[1] == "Idefics3ForConditionalGeneration" and lines[2].startswith("Idefics3Processor")
    assert hub.requests() == []


def test_vlm_serves_what_huggingface_hub_wrote_without_network(vlm, hub, env):
    py = _python_with("huggingface_hub")
    out = subprocess.run([py, "-c", "from huggingface_hub import snapshot_download\n"
                          "print(snapshot_download('test/vlm-demo'))"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    hub.clear_log()
    s = Server(vlm, "test/vlm-demo", [], env=dict(env, HF_ENDPOINT="http://127.0.0.1:9"))   # nothing listens there
    try:
        j = _ask_readme_question(s.base)
        assert j["choices"][0]["message"]["content"] == " A blue triangle and a red circle."
        assert j["model"] == "test-model"
    finally:
        s.stop()
    assert hub.requests() == []


def test_serve_by_name_downloads_and_answers_the_readme_request(vlm, hub, env):
    s = Server(vlm, "test/vlm-demo", [], env=env)
    try:
        j = _ask_readme_question(s.base)
        assert j["choices"][0]["message"]["content"] == " A blue triangle and a red circle."
    finally:
        s.stop()
    assert hub.requests("cdn")
    # without --served-model-name the model is served by its hub id, as vLLM does
    from conftest import free_port
    port = free_port()
    p = subprocess.Popen([vlm, "serve", "test/vlm-demo", "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
                         env=dict(env, HF_HUB_OFFLINE="1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ok = _wait_for(lambda: _models(port) is not None, timeout=60)
        assert ok and [m["id"] for m in _models(port)["data"]] == ["test/vlm-demo"]
    finally:
        p.terminate()
        p.wait(10)


def _models(port):
    try:
        r = requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
        return r.json() if r.status_code == 200 else None
    except requests.RequestException:
        return None


def test_two_pulls_at_once_fetch_each_byte_once(vlm, hub, env):
    ps = [subprocess.Popen([vlm, "pull", "test/big"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in ps]
    assert [p.returncode for p in ps] == [0, 0], outs
    assert outs[0][0] == outs[1][0]
    spans = []
    for e in hub.requests("cdn"):
        a, b = (e["range"] or "bytes=0-")[6:].split("-")
        spans.append(int(b) + 1 - int(a) if b else hub.big.size - int(a))
    assert sum(spans) == hub.big.size, spans


def test_not_enough_disk_space_is_said_before_downloading(vlm, hub, env):
    r = run(vlm, ["pull", "test/huge"], env)
    assert r.returncode == 1
    assert "not enough disk space in " + env["HF_HUB_CACHE"] in r.stderr and "--download-dir" in r.stderr, r.stderr
    assert hub.requests("cdn") == []
