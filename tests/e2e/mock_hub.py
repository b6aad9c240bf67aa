"""A mock of the Hugging Face hub on 127.0.0.1 for the hub tests and the download benchmark.

Two servers: the hub (the API and /resolve/) and a "CDN" on another port that LFS files
redirect to, as huggingface.co redirects to its storage hosts. What it serves follows
huggingface_hub's expectations (file_download.py, hf_api.py):

- GET /api/models/{repo}[/revision/{rev}]  -> {"id", "sha", "siblings": [{"rfilename"}], "gated"}
- GET /api/models/{repo}/tree/{rev}        -> [{"type": "file", "path", "oid", "size", "lfs"?}]
- HEAD|GET /{repo}/resolve/{rev}/{path}    -> small files: 200, ETag = git blob sha1;
  LFS files (*.safetensors, *.gguf, large): 302 to the CDN with X-Linked-Etag = sha256 and
  X-Linked-Size; both with X-Repo-Commit. Errors carry X-Error-Code (RepoNotFound,
  RevisionNotFound, EntryNotFound, GatedRepo) as the hub sends them.
- GET {cdn}/cdn/{sha256}?sig=...           -> the bytes; honours Range (206 + Content-Range).

Faults a test can set per file: "cut" (close after half, `count` times), "stall" (send half,
then hang), "corrupt" (one byte flipped; the etag still names the good bytes). Every request
is logged (method, path, range, authorization) for assertions.

Run alone: python tests/e2e/mock_hub.py ORG/NAME=FOLDER ... prints HF_ENDPOINT and serves.
"""
import hashlib
import http.server
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Blob:
    """File content, in memory or in a file on disk (large benchmark files)."""

    def __init__(self, data=None, path=None, lfs=None):
        self.data, self.path = data, path
        self.size = len(data) if data is not None else os.path.getsize(path)
        self.lfs = lfs
        if data is not None:
            self.sha256 = hashlib.sha256(data).hexdigest()
            self.git = git_blob_sha1(data)
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 24), b""):
                    h.update(block)
            self.sha256 = h.hexdigest()
            self.git = hashlib.sha1(self.sha256.encode()).hexdigest()   # stands in for the pointer file's id

    def is_lfs(self, name):
        return self.lfs if self.lfs is not None else name.endswith(LFS_SUFFIXES) or self.size > (1 << 20)

    def read(self, start, end):
        if self.data is not None:
            return self.data[start:end]
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


class Repo:
    def __init__(self, repo_id, gated=False, tokens=()):
        self.id, self.gated, self.tokens = repo_id, gated, set(tokens)
        self.commits = {}          # sha -> {path: Blob}
        self.refs = {}             # branch or tag -> sha

    def commit(self, files, refs=("main",)):
        """files: {path: bytes | Blob}. Returns the new commit's sha."""
        tree = {p: (b if isinstance(b, Blob) else Blob(b)) for p, b in files.items()}
        h = hashlib.sha1((self.id + json.dumps(sorted((p, b.sha256) for p, b in tree.items()))
                          + str(len(self.commits))).encode()).hexdigest()
        self.commits[h] = tree
        for r in refs:
            self.refs[r] = h
        return h

    def resolve(self, rev):
        if rev in self.refs:
            return self.refs[rev]
        return rev if rev in self.commits else None


class MockHub:
    def __init__(self):
        self.repos = {}
        self.log = []
        self.faults = {}           # sha256 -> {"mode": "cut"|"stall"|"corrupt", "count": n}
        self.lock = threading.Lock()
        self.hub = self._server(self._hub_handler())
        self.cdn = self._server(self._cdn_handler())
        self.endpoint = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_base = f"http://127.0.0.1:{self.cdn.server_address[1]}"

    # ---- set-up ----
    def add_repo(self, repo_id, gated=False, tokens=()):
        r = Repo(repo_id, gated, tokens)
        self.repos[repo_id] = r
        return r

    def publish_folder(self, repo_id, folder, refs=("main",), gated=False, tokens=(), skip=("README.md", "example.png")):
        r = self.repos.get(repo_id) or self.add_repo(repo_id, gated, tokens)
        files = {}
        for name in sorted(os.listdir(folder)):
            p = os.path.join(folder, name)
            if os.path.isfile(p) and name not in skip:
                with open(p, "rb") as f:
                    files[name] = f.read()
        return r.commit(files, refs)

    def set_fault(self, blob_sha256, mode, count=1):
        with self.lock:
            self.faults[blob_sha256] = {"mode": mode, "count": count}

    def requests(self, kind=None):
        with self.lock:
            return [e for e in self.log if kind is None or e["kind"] == kind]

    def clear_log(self):
        with self.lock:
            self.log.clear()

    def close(self):
        for s in (self.hub, self.cdn):
            s.shutdown()
            s.server_close()

    # ---- servers ----
    def _server(self, handler):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        srv.request_queue_size = 64
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv

    def _record(self, kind, h):
        with self.lock:
            self.log.append({"kind": kind, "method": h.command, "path": h.path,
                             "range": h.headers.get("Range"), "auth": h.headers.get("Authorization")})

    def _hub_handler(hub):
        class H(_Base):
            def do_GET(self):
                hub._record("hub", self)
                hub._hub(self, body=True)

            def do_HEAD(self):
                hub._record("hub", self)
                hub._hub(self, body=False)
        return H

    def _cdn_handler(hub):
        class H(_Base):
            def do_GET(self):
                hub._record("cdn", self)
                hub._cdn(self)
        return H

    # ---- the hub ----
    def _authorized(self, repo, h):
        if not repo.gated:
            return True
        a = h.headers.get("Authorization", "")
        return a.startswith("Bearer ") and a[7:] in repo.tokens

    def _hub(self, h, body):
        path = urllib.parse.urlsplit(h.path).path
        parts = [urllib.parse.unquote(p) for p in path.split("/")]
        if len(parts) >= 5 and parts[1] == "api" and parts[2] == "models":
            return self._api(h, parts[3] + "/" + parts[4], parts[5:])
        if len(parts) >= 6 and parts[3] == "resolve":
            # /org/name/resolve/{rev}/{path...}; a revision may be percent-encoded (refs%2Fpr%2F1)
            raw = path.split("/")
            return self._resolve(h, parts[1] + "/" + parts[2], urllib.parse.unquote(raw[4]),
                                 urllib.parse.unquote("/".join(raw[5:])), body)
        h.reply(404, b"", {"X-Error-Code": "RepoNotFound"})

    def _api(self, h, repo_id, rest):
        repo = self.repos.get(repo_id)
        if repo is None:
            return h.reply(401, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"}, body=True)
        rev = "main"
        if rest[:1] == ["revision"] and len(rest) >= 2:
            rev = "/".join(rest[1:])
        elif rest[:1] == ["tree"] and len(rest) >= 2:
            rev = rest[1]
        sha = repo.resolve(rev)
        if sha is None:
            return h.reply(404, b'{"error":"Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"}, body=True)
        tree = repo.commits[sha]
        if rest[:1] == ["tree"]:
            sub = "/".join(rest[2:])
            if sub and not any(p.startswith(sub + "/") for p in tree):
                return h.reply(404, b'{"error":"not found"}', {"X-Error-Code": "EntryNotFound"}, body=True)
            out = []
            for p, b in sorted(tree.items()):
                if sub and not p.startswith(sub + "/"):
                    continue
                e = {"type": "file", "path": p, "oid": b.git, "size": b.size}
                if b.is_lfs(p):
                    e["lfs"] = {"oid": b.sha256, "size": b.size, "pointerSize": 134}
                out.append(e)
            return h.reply(200, json.dumps(out).encode(), {"Content-Type": "application/json"}, body=True)
        info = {"_id": "0" * 24, "id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                "gated": "manual" if repo.gated else False, "disabled": False, "tags": [], "downloads": 0,
                "likes": 0, "library_name": "transformers", "lastModified": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in sorted(tree)]}
        h.reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body=True)

    def _resolve(self, h, repo_id, rev, name, body):
        repo = self.repos.get(repo_id)
        if repo is None:
            return h.reply(401, b"", {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, body)
        if not self._authorized(repo, h):
            code = 403 if h.headers.get("Authorization") else 401
            return h.reply(code, b"", {"X-Error-Code": "GatedRepo", "X-Error-Message":
                                       f"Access to model {repo_id} is restricted. You must have access to it "
                                       "and be authenticated to access it. Please log in."}, body)
        sha = repo.resolve(rev)
        if sha is None:
            return h.reply(404, b"", {"X-Error-Code": "RevisionNotFound"}, body)
        blob = repo.commits[sha].get(name)
        if blob is None:
            return h.reply(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha}, body)
        hdr = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if blob.is_lfs(name):
            hdr.update({"Location": f"{self.cdn_base}/cdn/{blob.sha256}?sig=mock&name={urllib.parse.quote(name)}",
                        "X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(getattr(blob, "announce", blob.size)),
                        "ETag": f'"{blob.git}"'})
            return h.reply(302, b"", hdr, body)
        hdr["ETag"] = f'"{blob.git}"'
        h.send_blob(blob, hdr, body, None)

    # ---- the CDN ----
    def _cdn(self, h):
        path = urllib.parse.urlsplit(h.path).path
        digest = path.rsplit("/", 1)[-1]
        blob = None
        for repo in self.repos.values():
            for tree in repo.commits.values():
                for b in tree.values():
                    if b.sha256 == digest:
                        blob = b
        if blob is None:
            return h.reply(404, b"", {}, True)
        fault = None
        with self.lock:
            f = self.faults.get(digest)
            if f and f["count"] > 0:
                f["count"] -= 1
                fault = f["mode"]
        h.send_blob(blob, {"Accept-Ranges": "bytes", "ETag": f'"{blob.sha256}"'}, True, fault)


class _Base(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, data, headers, body):
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body and data:
            self.wfile.write(data)

    def _range(self, size):
        r = self.headers.get("Range")
        if not r or not r.startswith("bytes="):
            return None
        a, _, b = r[6:].partition("-")
        start = int(a)
        end = int(b) + 1 if b else size
        return start, min(end, size)

    def send_blob(self, blob, headers, body, fault):
        rng = self._range(blob.size)
        start, end = rng if rng else (0, blob.size)
        if start >= blob.size and blob.size:
            return self.reply(416, b"", {"Content-Range": f"bytes */{blob.size}"}, body)
        self.send_response(206 if rng else 200)
        for k, v in headers.items():
            self.send_header(k, v)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{blob.size}")
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if not body:
            return
        try:
            if fault in ("cut", "stall"):
                half = start + (end - start) // 2
                self._send(blob, start, half)
                if fault == "stall":   # hang until the client goes away (or a minute passes)
                    self.connection.settimeout(0.2)
                    for _ in range(300):
                        try:
                            if not self.connection.recv(1):
                                break
                        except socket.timeout:
                            pass
                        except OSError:
                            break
                self.close_connection = True
                return
            if fault == "corrupt":
                data = bytearray(blob.read(start, end))
                if data:
                    data[len(data) // 2] ^= 0xFF
                self.wfile.write(bytes(data))
                return
            self._send(blob, start, end)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, blob, start, end):
        if blob.path is None:
            self.wfile.write(blob.data[start:end])
            return
        with open(blob.path, "rb") as f:
            self.connection.sendfile(f, start, end - start)


if __name__ == "__main__":
    hub = MockHub()
    for spec in sys.argv[1:]:
        repo_id, _, folder = spec.partition("=")
        print(repo_id, hub.publish_folder(repo_id, folder), flush=True)
    print(f"HF_ENDPOINT={hub.endpoint}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.close()
