#!/usr/bin/env bash
# bench_vs_llamacpp.sh — vlm.c against llama.cpp on the same GGUF files, interleaved.
#
# Converts MODEL (a SmolVLM/Idefics3 folder) with llama.cpp's own convert_hf_to_gguf.py to a bf16
# text GGUF and f16 + bf16 mmproj GGUFs, makes Q8_0 and Q4_K_M text files from the bf16 one with
# llama-quantize, then runs both engines A B A B ... for ROUNDS rounds on 2 threads:
#   decode   tg128 at depth 256    vlm bench --prompt-tokens 256 --tokens 128 | llama-bench -n 128 -d 256
#   prefill  pp256                 vlm bench --prompt-tokens 256              | llama-bench -p 256
#   image    encode ms per tile    vlm bench --image IMG --mmproj M           | llama-mtmd-cli --image IMG (its logged encode times)
#   RSS      peak, whole process of the image run (/usr/bin/time -v)
# with `cat /proc/loadavg` before each round. Prints each round's ratios (vlm.c / llama.cpp speed:
# > 1 means vlm.c is faster) and their medians, and writes everything to OUT/results.json.
#
# llama.cpp: LLAMA_BIN (default /work/llamacpp-build/bin) and LLAMA_SRC (its source, for the
# converter); when LLAMA_BIN has no llama-bench, it is built from the llama-cpp-python sdist
# (pip download --no-deps --no-binary :all: llama-cpp-python) under LLAMA_HOME (outside the repo).
#
# Usage: scripts/bench_vs_llamacpp.sh [--model DIR] [--image PNG] [--rounds N] [--threads N]
#          [--out DIR] [--types "bf16 q8_0 q4_k_m"] [--mmprojs "f16 bf16"] [--llama-only] [--vlm PATH]
# Run it under `flock /work/bench.lock` on a shared machine. `make bench` runs it with defaults.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODEL=/work/models-big/smolvlm-256m-random
IMAGE=""
ROUNDS=5
THREADS=2
OUT=/tmp/vlm-bench-vs-llamacpp
TYPES="bf16 q8_0 q4_k_m"
MMPROJS="f16 bf16"
LLAMA_ONLY=0
VLM="$ROOT/build/vlm"
PY="${PYTHON:-/work/venv/bin/python}"
[ -x "$PY" ] || PY=python3
LLAMA_BIN="${LLAMA_BIN:-/work/llamacpp-build/bin}"
LLAMA_SRC="${LLAMA_SRC:-/work/llamacpp-src/llama_cpp_python-0.3.36/vendor/llama.cpp}"
LLAMA_HOME="${LLAMA_HOME:-$HOME/.cache/vlm-bench/llama.cpp}"

while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL="$2"; shift 2 ;;
        --image) IMAGE="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --types) TYPES="$2"; shift 2 ;;
        --mmprojs) MMPROJS="$2"; shift 2 ;;
        --llama-only) LLAMA_ONLY=1; shift ;;
        --vlm) VLM="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "bench_vs_llamacpp: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$ROUNDS" -ge 1 ] || { echo "--rounds must be >= 1" >&2; exit 2; }
[ -f "$MODEL/config.json" ] || { echo "bench_vs_llamacpp: $MODEL has no config.json (make it: $PY scripts/make_model_fixtures.py --only-big --big $MODEL)" >&2; exit 1; }
[ -n "$IMAGE" ] || IMAGE="$MODEL/test-512.png"
[ -f "$IMAGE" ] || { echo "bench_vs_llamacpp: no image $IMAGE" >&2; exit 1; }
mkdir -p "$OUT"

# ---- llama.cpp: the lead's build, or one built from the PyPI sdist ----
if [ ! -x "$LLAMA_BIN/llama-bench" ]; then
    echo "== building llama.cpp from the llama-cpp-python sdist in $LLAMA_HOME" >&2
    mkdir -p "$LLAMA_HOME"
    if [ ! -d "$LLAMA_HOME/src" ]; then
        "$PY" -m pip download --no-deps --no-binary :all: llama-cpp-python -d "$LLAMA_HOME/dl" >&2
        mkdir -p "$LLAMA_HOME/src"
        tar -xzf "$LLAMA_HOME"/dl/llama_cpp_python-*.tar.gz -C "$LLAMA_HOME/src"
    fi
    LLAMA_SRC="$(ls -d "$LLAMA_HOME"/src/llama_cpp_python-*/vendor/llama.cpp | head -1)"
    cmake -S "$LLAMA_SRC" -B "$LLAMA_HOME/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON >&2
    cmake --build "$LLAMA_HOME/build" -j"$(nproc)" --target llama-bench llama-mtmd-cli llama-quantize >&2
    LLAMA_BIN="$LLAMA_HOME/build/bin"
fi
[ -f "$LLAMA_SRC/convert_hf_to_gguf.py" ] || { echo "bench_vs_llamacpp: no convert_hf_to_gguf.py under LLAMA_SRC=$LLAMA_SRC" >&2; exit 1; }

# ---- the same files for both: llama.cpp's converter + llama-quantize ----
convert() {  # convert OUTFILE OUTTYPE [--mmproj]
    [ -s "$1" ] && return 0
    echo "== convert_hf_to_gguf.py --outtype $2 ${3:-} -> $1" >&2
    PYTHONPATH="$LLAMA_SRC/gguf-py" "$PY" "$LLAMA_SRC/convert_hf_to_gguf.py" "$MODEL" --outtype "$2" ${3:-} --outfile "$1" >/dev/null 2>"$1.log" \
        || { tail -5 "$1.log" >&2; exit 1; }
}
convert "$OUT/text-bf16.gguf" bf16
for m in $MMPROJS; do convert "$OUT/mmproj-$m.gguf" "$m" --mmproj; done
for t in $TYPES; do
    [ "$t" = bf16 ] && continue
    f="$OUT/text-$t.gguf"
    [ -s "$f" ] || { echo "== llama-quantize $t" >&2; "$LLAMA_BIN/llama-quantize" "$OUT/text-bf16.gguf" "$f" "${t^^}" 2 >"$f.log" 2>&1 || { tail -5 "$f.log" >&2; exit 1; }; }
done

# ---- one measurement each; prints "key value" lines ----
vlm_text() {  # TYPE -> decode tok/s, decode % of bandwidth, prefill tok/s
    local o
    o=$("$VLM" bench "$OUT/text-$1.gguf" --mmproj "$OUT/mmproj-f16.gguf" --no-image --threads "$THREADS" \
        --prompt-tokens 256 --tokens 128 2>&1) || { echo "vlm_error 1"; echo "$o" | tail -3 >&2; return 0; }
    echo "$o" | awk '/^prefill /{for(i=1;i<=NF;i++) if($i=="tokens/s,") print "prefill", $(i-1)}
                     /^decode /{for(i=1;i<=NF;i++){ if($i=="tokens/s,") print "decode", $(i-1); if($i=="of" && $(i+1)=="memory") {p=$(i-1); sub("%","",p); print "decode_bw_pct", p}}}' | head -3
}
llama_text() {  # TYPE -> decode tok/s, prefill tok/s
    "$LLAMA_BIN/llama-bench" -m "$OUT/text-$1.gguf" -t "$THREADS" -p 256 -n 0 -r 1 -o json 2>/dev/null \
        | "$PY" -c 'import json,sys; print("prefill", json.load(sys.stdin)[0]["avg_ts"])'
    "$LLAMA_BIN/llama-bench" -m "$OUT/text-$1.gguf" -t "$THREADS" -p 0 -n 128 -d 256 -r 1 -o json 2>/dev/null \
        | "$PY" -c 'import json,sys; print("decode", json.load(sys.stdin)[0]["avg_ts"])'
}
rss_of() { awk -F: '/Maximum resident set size/{gsub(/ /,"",$2); printf "%.1f\n", $2/1024}' "$1"; }
vlm_image() {  # MMPROJ -> ms per tile, peak RSS MiB
    local o
    o=$(/usr/bin/time -v -o "$OUT/time.txt" "$VLM" bench "$OUT/text-q8_0.gguf" --mmproj "$OUT/mmproj-$1.gguf" --image "$IMAGE" \
        --threads "$THREADS" --prompt-tokens 16 --tokens 4 2>&1) || { echo "vlm_error 1"; echo "$o" | tail -3 >&2; return 0; }
    echo "$o" | awk '/^image encode /{for(i=1;i<=NF;i++) if($i=="ms" && $(i+1)=="per") print "tile_ms", $(i-1)}' | head -1
    echo "rss_mib $(rss_of "$OUT/time.txt")"
}
llama_image() {  # MMPROJ -> ms per tile (mean of slice encodes), peak RSS MiB
    /usr/bin/time -v -o "$OUT/time.txt" "$LLAMA_BIN/llama-mtmd-cli" -m "$OUT/text-q8_0.gguf" --mmproj "$OUT/mmproj-$1.gguf" \
        --image "$IMAGE" -p "Describe this image." -n 4 -t "$THREADS" --temp 0 >"$OUT/mtmd.log" 2>&1 || { echo "llama_error 1"; tail -3 "$OUT/mtmd.log" >&2; return 0; }
    # older mtmd: "image slice encoded in X ms" per tile; newer: "encoding mtmd batch, n_chunks = K"
    # then "mtmd batch encoding done in X ms" (K tiles)
    awk '/image slice encoded in/{for(i=1;i<=NF;i++) if($i=="in") {s+=$(i+1); n++}}
         /encoding mtmd batch, n_chunks =/{for(i=1;i<NF;i++) if($i=="n_chunks" && $(i+1)=="=") k=$(i+2)+0}
         /mtmd batch encoding done in/{for(i=1;i<=NF;i++) if($i=="in") {s+=$(i+1); n+=(k>0?k:1)}}
         END{if(n) printf "tile_ms %.2f\ntiles %d\n", s/n, n}' "$OUT/mtmd.log"
    echo "rss_mib $(rss_of "$OUT/time.txt")"
}

# ---- rounds: A B A B ..., the order flipped every round ----
RES="$OUT/rounds.txt"
: >"$RES"
for r in $(seq 1 "$ROUNDS"); do
    echo "round $r loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RES" >&2
    for t in $TYPES; do
        for side in $( [ $((r % 2)) -eq 1 ] && echo "vlm llama" || echo "llama vlm"); do
            [ "$side" = vlm ] && [ "$LLAMA_ONLY" = 1 ] && continue
            if [ "$side" = vlm ]; then vlm_text "$t"; else llama_text "$t"; fi | sed "s/^/$r $side text-$t /" >>"$RES"
        done
    done
    for m in $MMPROJS; do
        for side in $( [ $((r % 2)) -eq 1 ] && echo "vlm llama" || echo "llama vlm"); do
            [ "$side" = vlm ] && [ "$LLAMA_ONLY" = 1 ] && continue
            if [ "$side" = vlm ]; then vlm_image "$m"; else llama_image "$m"; fi | sed "s/^/$r $side mmproj-$m /" >>"$RES"
        done
    done
    echo "round $r done loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RES" >&2
done

"$PY" "$ROOT/scripts/bench_vs_llamacpp_report.py" "$RES" "$OUT/results.json"
