#!/bin/sh
# check-aarch64.sh — the kernel layer without x86: cross-compiles src/tensor (every file but the
# *_avx2.c / *_avx512.c variants, which only x86 builds compile) with the thread pool and
# tests/test_kernels.c for aarch64 with Debian's cross compiler, then runs the test under
# qemu-user: on an Arm machine the generic table is the one in use, and it must pass.
# Needs gcc-aarch64-linux-gnu and qemu-user (scripts/install-deps.sh --test installs them).
set -eu
cd "$(dirname "$0")/.."
CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
out=${1:-build-aarch64}
mkdir -p "$out"
srcs=$(ls src/tensor/*.c | grep -v -e '_avx2\.c$' -e '_avx512\.c$')
# -fno-tree-vectorize: gcc 12's aarch64 vectorizer crashes (ICE in vect_transform_reduction) on
# test_kernels.c; the library itself is built as everywhere.
flags="-std=c11 -O2 -Wall -Wextra -Wshadow -Werror -D_GNU_SOURCE -fno-strict-aliasing -Iinclude -Isrc"
for f in $srcs src/util/alloc.c src/util/threadpool.c; do
  $CC $flags -c "$f" -o "$out/$(basename "$f" .c).o"
done
# resize.c compiles without its AVX2 twin (it needs libjpeg & co. only to link, not to compile)
$CC $flags -fsyntax-only src/image/resize.c
$CC $flags -fno-tree-vectorize -DVLM_SOURCE_DIR="\"$PWD\"" tests/test_kernels.c "$out"/*.o -o "$out/test_kernels" -lm -lpthread
echo "built $out/test_kernels for aarch64 ($(file -b "$out/test_kernels" | cut -d, -f1-2))"
VLM_TEST_QUICK=1 qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/test_kernels"
