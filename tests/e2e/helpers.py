"""Shared checks for the end-to-end tests."""
from conftest import data_url, png_bytes

TEXT_MAX = 12


def chat_body(content, **kw):
    body = {"model": "test-model", "messages": [{"role": "user", "content": content}],
            "max_tokens": TEXT_MAX, "temperature": 0}
    body.update(kw)
    return body


def image_part(url):
    return {"type": "image_url", "image_url": {"url": url}}


def with_image(url, text="What is shown in the image?"):
    return [{"type": "text", "text": text}, image_part(url)]


def assert_error(resp, status, contains=None):
    """The status, vLLM's error shape, a message that echoes no internals, and the expected text."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    assert err["code"] == status
    assert isinstance(err["message"], str) and err["message"]
    if status == 400:
        assert err["type"] == "BadRequestError"
    for leak in ("/tmp/", "/etc/", "jansson", "libcurl", "libpng", "169.254.169.254", "127.0.0.1:"):
        assert leak not in err["message"], err["message"]
    if contains:
        assert contains in err["message"], err["message"]
    return err


def assert_healthy(server):
    """A normal request (with an image) still succeeds."""
    r = server.post("/v1/chat/completions", chat_body(with_image(data_url(png_bytes(24, 24, 3))), max_tokens=4))
    assert r.status_code == 200, r.text[:500]
    j = r.json()
    assert j["object"] == "chat.completion"
    assert j["choices"][0]["finish_reason"] in ("stop", "length")
    assert j["usage"]["completion_tokens"] >= 1
