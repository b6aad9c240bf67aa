"""The job scripts of examples/slurm on a real one-machine Slurm cluster (tests/slurm/cluster.sh):
serve.sbatch (endpoint file, a request, clean stop on scancel), ask-images.sbatch (one JSON line
per image, equal to `vlm generate`), replicas.sbatch (2 replicas behind HAProxy: 200 requests
all answered right while one replica is killed mid-way; both replicas served before the kill).

Needs root and Debian's munge, slurmctld, slurmd, slurm-client, haproxy (scripts/install-deps.sh
--test installs them). Outside CI, a machine without them skips; with CI=true it fails."""
import concurrent.futures as cf
import csv
import io
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples", "slurm")
VLM = os.environ.get("VLM_BIN") or os.path.join(ROOT, "build", "vlm")
MODEL = os.path.join(ROOT, "models", "vlm-demo")
IMAGES = [os.path.join(ROOT, "tests", "fixtures", "scenes", f"scene_00{i}.png") for i in range(4)]
QUESTION = "What is shown in the image?"
NEEDED = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "haproxy"]


def _missing():
    if os.geteuid() != 0:
        return "needs root (slurmd)"
    gone = [b for b in NEEDED if not shutil.which(b)]
    return f"missing {' '.join(gone)}" if gone else None


@pytest.fixture(scope="module")
def cluster():
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Slurm tests cannot run in CI: {why}")
        pytest.skip(why)
    d = tempfile.mkdtemp(prefix="vlm-slurm-")
    os.chmod(d, 0o755)
    out = subprocess.run([os.path.join(ROOT, "tests", "slurm", "cluster.sh"), "start", d],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    env = dict(os.environ, SLURM_CONF=os.path.join(d, "slurm.conf"), VLM=VLM, MODEL=MODEL,
               VLM_SLURM_DIR=EXAMPLES, PYTHON=os.sys.executable)
    work = os.path.join(d, "jobs")
    os.makedirs(work)
    yield {"dir": d, "env": env, "work": work}
    subprocess.run([os.path.join(ROOT, "tests", "slurm", "cluster.sh"), "stop", d], timeout=120)
    shutil.rmtree(d, ignore_errors=True)


def sbatch(c, script, *opts, env=None):
    """Submits script with sbatch options opts (they go before the script)."""
    out = subprocess.run(["sbatch", "--parsable", *opts, os.path.join(EXAMPLES, script)], cwd=c["work"],
                         env=env or c["env"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def job_state(c, job):
    out = subprocess.run(["scontrol", "show", "job", job, "-o"], env=c["env"], capture_output=True, text=True)
    fields = dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)
    return fields.get("JobState"), fields.get("ExitCode")


def wait_state(c, job, states, timeout):
    t = time.time() + timeout
    while time.time() < t:
        st, code = job_state(c, job)
        if st in states:
            return st, code
        time.sleep(0.5)
    raise AssertionError(f"job {job}: still {job_state(c, job)} after {timeout} s; output:\n{job_output(c, job)}")


def wait_file(c, path, job, timeout=120):
    t = time.time() + timeout
    while time.time() < t:
        if os.path.isfile(path) and os.path.getsize(path):
            return open(path).read().strip()
        st, _ = job_state(c, job)
        assert st in ("PENDING", "RUNNING", "CONFIGURING"), f"job {job} is {st}:\n{job_output(c, job)}"
        time.sleep(0.3)
    raise AssertionError(f"{path} did not appear; output:\n{job_output(c, job)}")


def job_output(c, job):
    for f in os.listdir(c["work"]):
        if job in f and f.endswith(".out"):
            return open(os.path.join(c["work"], f)).read()[-4000:]
    return "(no output file)"


def ask(base, image=IMAGES[0], timeout=120):
    import base64
    data = base64.b64encode(open(image, "rb").read()).decode()
    model = requests.get(base + "/models", timeout=timeout).json()["data"][0]["id"]
    r = requests.post(base + "/chat/completions", timeout=timeout, json={
        "model": model, "temperature": 0, "max_tokens": 32,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": QUESTION},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]}]})
    return r


@pytest.fixture(scope="module")
def expected():
    """What `vlm generate` answers for each image (the reference for every job)."""
    out = {}
    for img in IMAGES:
        p = subprocess.run([VLM, "generate", MODEL, "--image", img, "--prompt", QUESTION, "--temperature", "0",
                            "--max-tokens", "32", "--json"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        out[os.path.basename(img)] = json.loads(p.stdout)["text"]
    return out


def test_serve_sbatch(cluster, expected):
    job = sbatch(cluster, "serve.sbatch")
    endpoint = wait_file(cluster, os.path.join(cluster["work"], f"vlm-serve-{job}.endpoint"), job)
    assert endpoint.startswith("http://") and endpoint.endswith("/v1"), endpoint
    base = endpoint.replace(f"http://{os.uname().nodename}", "http://127.0.0.1")
    r = ask(base)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == expected[os.path.basename(IMAGES[0])]
    subprocess.run(["scancel", job], env=cluster["env"], check=True)
    st, _ = wait_state(cluster, job, ("CANCELLED", "COMPLETED", "FAILED"), 60)
    assert st in ("CANCELLED", "COMPLETED")
    out = job_output(cluster, job)
    assert "SIGTERM: stopping the server" in out, out
    assert not os.path.exists(os.path.join(cluster["work"], f"vlm-serve-{job}.endpoint"))
    with pytest.raises(requests.ConnectionError):
        requests.get(base.rsplit("/v1", 1)[0] + "/health", timeout=5)


@pytest.mark.parametrize("file_urls", ["0", "1"])
def test_ask_images_sbatch(cluster, expected, file_urls):
    imgs = os.path.join(cluster["dir"], f"images-{file_urls}")
    os.makedirs(imgs, exist_ok=True)
    for i in IMAGES:
        shutil.copy(i, imgs)
    env = dict(cluster["env"], IMAGES=imgs, QUESTION=QUESTION, FILE_URLS=file_urls, MAX_TOKENS="32")
    job = sbatch(cluster, "ask-images.sbatch", env=env)
    st, code = wait_state(cluster, job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 300)
    assert st == "COMPLETED" and code == "0:0", job_output(cluster, job)
    rows = [json.loads(l) for l in open(os.path.join(cluster["work"], f"ask-images-{job}.jsonl"))]
    assert [r["file"] for r in rows] == sorted(expected)
    for r in rows:
        assert "error" not in r, r
        assert r["question"] == QUESTION and r["latency_s"] > 0
        assert r["answer"] == expected[r["file"]], r


def test_ask_images_fails_on_a_bad_image(cluster):
    imgs = os.path.join(cluster["dir"], "images-bad")
    os.makedirs(imgs, exist_ok=True)
    shutil.copy(IMAGES[0], imgs)
    with open(os.path.join(imgs, "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n truncated")
    job = sbatch(cluster, "ask-images.sbatch", env=dict(cluster["env"], IMAGES=imgs))
    st, code = wait_state(cluster, job, ("COMPLETED", "FAILED", "CANCELLED"), 300)
    assert st == "FAILED" and code != "0:0", (st, code)
    rows = {r["file"]: r for r in map(json.loads, open(os.path.join(cluster["work"], f"ask-images-{job}.jsonl")))}
    assert "error" in rows["broken.png"] and "answer" in rows[os.path.basename(IMAGES[0])]


def lb_stats(stats_url):
    text = requests.get(stats_url.replace(f"http://{os.uname().nodename}", "http://127.0.0.1") + ";csv", timeout=5).text
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {r["svname"]: r for r in rows if r["pxname"] == "replicas"}


def test_replicas_sbatch_survives_a_dead_replica(cluster, expected):
    job = sbatch(cluster, "replicas.sbatch", "--ntasks=2", "--cpus-per-task=1")
    endpoint = wait_file(cluster, os.path.join(cluster["work"], f"vlm-replicas-{job}.endpoint"), job, 180)
    stats = open(os.path.join(cluster["work"], f"vlm-replicas-{job}.stats")).read().strip()
    base = endpoint.replace(f"http://{os.uname().nodename}", "http://127.0.0.1")
    want = expected[os.path.basename(IMAGES[0])]
    n, kill_at = 200, 60
    results = [None] * n

    def one(i):
        r = ask(base, timeout=300)
        results[i] = (r.status_code, r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else r.text)

    with cf.ThreadPoolExecutor(4) as pool:
        futs = [pool.submit(one, i) for i in range(kill_at)]
        cf.wait(futs)
        before = lb_stats(stats)
        served = {k: int(v["stot"]) for k, v in before.items() if k.startswith("replica-")}
        assert len(served) == 2 and all(v > 0 for v in served.values()), served
        futs = [pool.submit(one, i) for i in range(kill_at, n)]
        time.sleep(0.5)   # requests are in flight on both replicas
        steps = subprocess.run(["squeue", "-h", "-s", "-j", job, "-o", "%i %j"], env=cluster["env"],
                               capture_output=True, text=True).stdout.split("\n")
        victim = next(s.split()[0] for s in steps if s.endswith("replica-1"))
        subprocess.run(["scancel", "--signal=KILL", victim], env=cluster["env"], check=True)
        cf.wait(futs)
        for f in futs:
            f.result()
    bad = [(i, r) for i, r in enumerate(results) if r != (200, want)]
    assert not bad, bad[:5]
    # the health checks take the dead replica out (fall 2, inter 1 s): within a few seconds
    deadline = time.time() + 20
    after = lb_stats(stats)
    while not after["replica-1"]["status"].startswith("DOWN") and time.time() < deadline:
        time.sleep(0.5)
        after = lb_stats(stats)
    assert after["replica-1"]["status"].startswith("DOWN"), after["replica-1"]["status"]
    assert int(after["replica-0"]["stot"]) > served["replica-0"]
    subprocess.run(["scancel", job], env=cluster["env"], check=True)
    wait_state(cluster, job, ("CANCELLED", "COMPLETED", "FAILED"), 60)


def test_time_limit_stops_the_server_cleanly(cluster):
    """--signal=B:TERM@60 at a 1-minute limit: the batch shell gets TERM at once and stops vlm."""
    job = sbatch(cluster, "serve.sbatch", "--time=00:01:00")
    wait_file(cluster, os.path.join(cluster["work"], f"vlm-serve-{job}.endpoint"), job)
    st, _ = wait_state(cluster, job, ("COMPLETED", "CANCELLED", "TIMEOUT", "FAILED"), 120)
    assert "SIGTERM: stopping the server" in job_output(cluster, job)
    assert st == "COMPLETED", st
