#!/usr/bin/env bash
# check_quantize_vs_llamacpp.sh — `vlm quantize` on a real-shaped model against llama.cpp's own
# tools: for each type, our text (+ mmproj) GGUF compared key for key and tensor byte for byte
# (scripts/gguf_diff.py) with convert_hf_to_gguf.py's file (bf16, f16 mmproj) or llama-quantize's
# (q8_0, q4_k_m, q5_k_m, q4_0 from the converter's bf16 file); then llama.cpp runs our files:
# llama-completion on the text GGUF and llama-mtmd-cli with our mmproj on an image.
#
# Usage: scripts/check_quantize_vs_llamacpp.sh [--model DIR] [--work DIR] [--types "bf16 q8_0 q4_k_m"]
# Big files: run under `flock /work/big.lock`; WORK defaults to /work/models-big/quantize-check.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODEL=/work/models-big/smolvlm-256m-random
WORK=/work/models-big/quantize-check
TYPES="bf16 q8_0 q4_k_m q5_k_m q4_0"
PY="${PYTHON:-/work/venv/bin/python}"
VLM="$ROOT/build/vlm"
LLAMA_BIN="${LLAMA_BIN:-/work/llamacpp-build/bin}"
LLAMA_SRC="${LLAMA_SRC:-/work/llamacpp-src/llama_cpp_python-0.3.36/vendor/llama.cpp}"
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --types) TYPES="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$WORK"
IMAGE="$MODEL/test-512.png"
conv() {  # OUT TYPE [--mmproj]
    [ -s "$1" ] || PYTHONPATH="$LLAMA_SRC/gguf-py" "$PY" "$LLAMA_SRC/convert_hf_to_gguf.py" "$MODEL" --outtype "$2" ${3:-} --outfile "$1" >/dev/null 2>&1
}
conv "$WORK/llama-bf16.gguf" bf16
conv "$WORK/llama-mmproj-f16.gguf" f16 --mmproj
status=0
for t in $TYPES; do
    echo "== $t"
    if [ "$t" != bf16 ]; then
        [ -s "$WORK/llama-$t.gguf" ] || "$LLAMA_BIN/llama-quantize" "$WORK/llama-bf16.gguf" "$WORK/llama-$t.gguf" "${t^^}" 2 >/dev/null 2>&1
    fi
    /usr/bin/time -f "vlm quantize $t: %e s, peak RSS %M KiB" "$VLM" quantize "$MODEL" "$WORK/ours-$t.gguf" --type "$t" \
        --mmproj-out "$WORK/ours-mmproj-$t.gguf" --threads 2
    "$PY" "$ROOT/scripts/gguf_diff.py" "$WORK/ours-$t.gguf" "$WORK/llama-$t.gguf" | tail -8 || status=1
    # llama.cpp runs our files (random weights: the text is noise; the point is that it loads and runs)
    if "$LLAMA_BIN/llama-completion" -m "$WORK/ours-$t.gguf" -p "The capital of France is" -n 8 -t 2 --temp 0 -no-cnv \
        >"$WORK/completion-$t.log" 2>&1; then
        echo "llama-completion on ours-$t.gguf: ok ($(grep -o 'eval time.*' "$WORK/completion-$t.log" | tail -1))"
    else
        echo "llama-completion on ours-$t.gguf: FAILED"; tail -5 "$WORK/completion-$t.log"; status=1
    fi
    if "$LLAMA_BIN/llama-mtmd-cli" -m "$WORK/ours-$t.gguf" --mmproj "$WORK/ours-mmproj-$t.gguf" --image "$IMAGE" \
        -p "Describe this image." -n 8 -t 2 --temp 0 >"$WORK/mtmd-$t.log" 2>&1; then
        echo "llama-mtmd-cli with ours-mmproj-$t.gguf: ok ($(grep -c "slice encoded\|batch encoding done" "$WORK/mtmd-$t.log") image encodes logged)"
    else
        echo "llama-mtmd-cli with ours-mmproj-$t.gguf: FAILED"; tail -5 "$WORK/mtmd-$t.log"; status=1
    fi
done
[ -s "$WORK/ours-mmproj-q4_k_m.gguf" ] && { echo "== mmproj (f16, written beside q4_k_m) vs the converter's f16 mmproj";
    "$PY" "$ROOT/scripts/gguf_diff.py" "$WORK/ours-mmproj-q4_k_m.gguf" "$WORK/llama-mmproj-f16.gguf" | tail -5 || status=1; }
exit $status
