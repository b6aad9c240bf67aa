#!/usr/bin/env python3
"""gguf_diff.py — compares two GGUF files with gguf-py's reader (the format reference): metadata
keys and values, tensor names, types, shapes and bytes. Prints each difference and a summary;
exit status 1 when they differ. Keys named with --ignore are skipped (e.g. general.size_label).

Usage: python scripts/gguf_diff.py A.gguf B.gguf [--ignore KEY ...] [--types-only]
"""
import argparse
import sys

import numpy as np
from gguf import GGUFReader


def kv(r):
    out = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        v = f.contents()
        out[k] = ([t.name for t in f.types], v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--ignore", nargs="*", default=[])
    ap.add_argument("--types-only", action="store_true", help="compare tensor types and shapes, not bytes")
    a = ap.parse_args()
    ra, rb = GGUFReader(a.a), GGUFReader(a.b)
    ka, kb = kv(ra), kv(rb)
    diffs = 0
    for k in sorted(set(ka) | set(kb)):
        if k in a.ignore:
            continue
        if k not in ka or k not in kb:
            print(f"key {k}: only in {'A' if k in ka else 'B'}")
            diffs += 1
        elif ka[k] != kb[k]:
            sa, sb = str(ka[k])[:120], str(kb[k])[:120]
            print(f"key {k}: {sa} != {sb}")
            diffs += 1
    ta = {t.name: t for t in ra.tensors}
    tb = {t.name: t for t in rb.tensors}
    same_bytes = 0
    for n in sorted(set(ta) | set(tb)):
        if n not in ta or n not in tb:
            print(f"tensor {n}: only in {'A' if n in ta else 'B'}")
            diffs += 1
            continue
        x, y = ta[n], tb[n]
        if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
            print(f"tensor {n}: {x.tensor_type.name}{list(map(int, x.shape))} != {y.tensor_type.name}{list(map(int, y.shape))}")
            diffs += 1
        elif not a.types_only:
            bx, by = np.asarray(x.data).tobytes(), np.asarray(y.data).tobytes()
            if bx != by:
                nd = sum(1 for i in range(0, len(bx), 1) if bx[i] != by[i]) if len(bx) == len(by) else -1
                print(f"tensor {n} ({x.tensor_type.name}): bytes differ ({nd} of {len(bx)})")
                diffs += 1
            else:
                same_bytes += 1
    print(f"{len(ka)}/{len(kb)} keys, {len(ta)}/{len(tb)} tensors, {same_bytes} byte-identical, {diffs} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
