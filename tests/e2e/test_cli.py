"""The `vlm` command as a new user meets it (issue 15, item 13): help, version, flag
suggestions, error messages that name the file once, and `vlm generate` with a system message,
several turns, processor settings and a JSON result with the prompt ids and total tokens."""
import json
import os
import subprocess

from conftest import ROOT

DEMO = os.path.join(ROOT, "models", "vlm-demo")
IMG = os.path.join(DEMO, "example.png")


def vlm(vlm_env, *args, timeout=120):
    return subprocess.run([vlm_env[0], *args], capture_output=True, text=True, timeout=timeout)


def gen_json(vlm_env, *args):
    p = vlm(vlm_env, "generate", DEMO, "--json", "--max-tokens", "8", "--temperature", "0", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_help_and_version(vlm_env):
    p = vlm(vlm_env, "help")
    assert p.returncode == 0 and "serve" in p.stdout and "generate" in p.stdout
    p = vlm(vlm_env, "help", "serve")
    assert p.returncode == 0 and "--limit-mm-per-prompt" in p.stdout
    assert vlm(vlm_env, "help", "nope").returncode == 2
    p = vlm(vlm_env, "--version")
    assert p.returncode == 0 and "commit " in p.stdout and "build: " in p.stdout and "kernels: " in p.stdout
    p = vlm(vlm_env, "bench-tokenizer", "--help")
    assert p.returncode == 0 and "usage" in p.stdout


def test_mistyped_flags_name_the_nearest(vlm_env):
    p = vlm(vlm_env, "generate", "--promt", "hi")
    assert p.returncode == 2 and "did you mean --prompt?" in p.stderr
    p = vlm(vlm_env, "serve", DEMO, "--max-model-lenn", "100")
    assert p.returncode == 2 and "did you mean --max-model-len?" in p.stderr


def test_errors_name_the_file_once(vlm_env):
    p = vlm(vlm_env, "generate", DEMO, "--image", "/nonexistent/x.png", "--prompt", "hi")
    assert p.returncode != 0 and p.stderr.count("/nonexistent/x.png") == 1, p.stderr
    not_image = os.path.join(DEMO, "config.json")
    p = vlm(vlm_env, "generate", DEMO, "--image", IMG, "--image", not_image, "--prompt", "hi")
    assert p.returncode != 0 and not_image in p.stderr and "image 2" in p.stderr, p.stderr


def test_generate_json_system_messages_and_processor_settings(vlm_env, tmp_path):
    base = gen_json(vlm_env, "--image", IMG, "--prompt", "What is shown in the image?")
    assert base["text"] == " A blue triangle and a red circle."[:len(base["text"])]
    assert len(base["prompt_token_ids"]) == base["usage"]["prompt_tokens"]
    assert base["usage"]["total_tokens"] == base["usage"]["prompt_tokens"] + base["usage"]["completion_tokens"]
    sys = gen_json(vlm_env, "--image", IMG, "--system", "You are terse.", "--prompt", "What is shown in the image?")
    assert sys["usage"]["prompt_tokens"] > base["usage"]["prompt_tokens"]
    # several turns from a file: the image part takes --image, the last turn is --prompt
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown in the image?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A blue triangle and a red circle."}]}]))
    turns = gen_json(vlm_env, "--messages", str(msgs), "--image", IMG, "--prompt", "How many shapes are there?")
    assert turns["usage"]["prompt_tokens"] > base["usage"]["prompt_tokens"]
    assert turns["prompt_token_ids"][:25] == base["prompt_token_ids"][:25]   # the same first turn
    split = gen_json(vlm_env, "--image", IMG, "--prompt", "What is shown in the image?",
                     "--mm-processor-kwargs", '{"do_image_splitting": true, "size": {"longest_edge": 768}}')
    assert split["usage"]["prompt_tokens"] > base["usage"]["prompt_tokens"]
    nosplit = gen_json(vlm_env, "--image", IMG, "--prompt", "What is shown in the image?", "--no-splitting")
    assert nosplit["prompt_token_ids"] == base["prompt_token_ids"]


GEMMA3_GGUF = os.path.join(ROOT, "tests", "fixtures", "gguf", "gemma3-text-f32.gguf")
PPL_TEXT = os.path.join(ROOT, "tests", "fixtures", "gemma3-270m", "ppl-text.txt")


def test_perplexity_and_raw_completion_on_a_gguf(vlm_env):
    """`vlm perplexity` prints llama-perplexity's running figures and final estimate (the last
    running figure is the final one); a text shorter than two chunks is a clear error; `vlm
    generate --raw` runs BOS + the text without a chat template (the file has none)."""
    p = vlm(vlm_env, "perplexity", GEMMA3_GGUF, "-f", PPL_TEXT, "-c", "64", "--chunks", "3", "--threads", "1")
    assert p.returncode == 0, p.stderr
    running = [float(x.split("]")[1]) for x in p.stdout.replace("\n", "").split(",") if x.startswith("[")]
    final = float(p.stdout.split("Final estimate: PPL = ")[1].split()[0])
    assert len(running) == 3 and abs(running[-1] - final) < 1e-3 and final > 1
    # llama.cpp 0c1e570 on the same file: llama-perplexity -m gemma3-text-f32.gguf -f ppl-text.txt
    # -c 64 --chunks 3 -t 1 printed [1]523.7997,[2]494.6360,[3]488.4364 (its f16 KV cache and
    # GELU table move the last digits); vlm.c: 523.7887, 494.6434, 488.4332
    for got, want in zip(running, [523.7997, 494.6360, 488.4364]):
        assert abs(got / want - 1) < 1e-4, (running, want)
    p = vlm(vlm_env, "perplexity", GEMMA3_GGUF, "-f", PPL_TEXT, "-c", "8192")
    assert p.returncode == 1 and "needs at least 16384" in p.stderr and PPL_TEXT in p.stderr
    p = vlm(vlm_env, "generate", GEMMA3_GGUF, "--raw", "--prompt", "the river", "--json", "--max-tokens", "4",
            "--temperature", "0")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["prompt_token_ids"][0] == 1 and out["usage"]["completion_tokens"] == 4
    p = vlm(vlm_env, "generate", GEMMA3_GGUF, "--prompt", "the river")
    assert p.returncode == 1 and "no chat template" in p.stderr
