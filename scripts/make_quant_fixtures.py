#!/usr/bin/env python3
"""Reference data for tests/test_quant.c, made with gguf-py (pip `gguf`), the quantization code
llama.cpp's converter uses.

quant.bin (little-endian) holds records "VQNT" u32 n_records, then per record:
  u32 kind (0: dequantize, 1: quantize), u32 ggml type id, u32 n_elems,
  u32 n_bytes, bytes (the blocks), n_elems f32 (dequantize: gguf.quants.dequantize of the
  blocks; quantize: the f32 input that gguf.quants.quantize turned into the blocks).
Dequantize records hold random blocks whose f16 scales include zero, subnormals, +-65504,
+-inf and NaN; quantize records hold rows with mixed magnitudes, all-zero and constant blocks,
one-outlier blocks and ties on the largest magnitude.

Run: /work/venv/bin/python scripts/make_quant_fixtures.py
"""
import os, struct

import numpy as np
from gguf import GGMLQuantizationType as T, quants

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "quant", "quant.bin")
SIZES = {T.Q8_0: (32, 34), T.Q4_0: (32, 18), T.Q4_1: (32, 20), T.Q5_0: (32, 22), T.Q5_1: (32, 24),
         T.Q4_K: (256, 144), T.Q5_K: (256, 176), T.Q6_K: (256, 210)}
# byte offsets of the f16 scales in each block type
F16_AT = {T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2],
          T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}
SPECIAL_F16 = [0x0000, 0x8000, 0x0001, 0x83ff, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x3c00, 0x0400]


def random_blocks(rng, t, n_blocks):
    be, bb = SIZES[t]
    raw = rng.integers(0, 256, size=(n_blocks, bb), dtype=np.uint8)
    for b in range(n_blocks):
        for off in F16_AT[t]:
            r = rng.random()
            if r < 0.3:
                h = SPECIAL_F16[rng.integers(len(SPECIAL_F16))]
            elif r < 0.6:   # ordinary scales of weights
                h = int(np.float16(rng.normal() * 0.01).view(np.uint16))
            else:           # any bit pattern
                h = int(rng.integers(0, 65536))
            raw[b, off] = h & 0xFF
            raw[b, off + 1] = h >> 8
    return raw


def quant_input(rng, n_blocks, be):
    x = (rng.normal(size=(n_blocks, be)) * np.exp(rng.normal(size=(n_blocks, 1)) * 3)).astype(np.float32)
    x[0] = 0                                  # all zero
    x[1] = 0.25                               # constant
    x[2] = rng.normal(size=be).astype(np.float32) * 1e-3
    x[2, 5] = 40.0                            # one outlier
    x[3, :] = rng.integers(-3, 4, size=be)    # ties on the largest magnitude, exact halves
    x[4] = -x[4]
    if n_blocks > 5:
        x[5] = np.abs(x[5])                   # all positive (min > 0)
    return x.reshape(-1)


def main():
    rng = np.random.default_rng(12)
    recs = []
    for t, (be, bb) in SIZES.items():
        nb = 32 if be == 32 else 8
        raw = random_blocks(rng, t, nb)
        with np.errstate(all="ignore"):
            y = quants.dequantize(raw.reshape(-1), t).astype(np.float32).reshape(-1)
        assert y.size == nb * be
        recs.append((0, int(t), nb * be, raw.tobytes(), y))
    for t in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.F16, T.BF16):
        be = 32
        x = quant_input(rng, 24, be)
        with np.errstate(all="ignore"):
            q = quants.quantize(x.reshape(4, -1), t)
        recs.append((1, int(t), x.size, np.ascontiguousarray(q).view(np.uint8).tobytes(), x))
    out = bytearray(b"VQNT" + struct.pack("<I", len(recs)))
    for kind, t, n, blob, f in recs:
        out += struct.pack("<IIII", kind, t, n, len(blob)) + blob + f.astype("<f4").tobytes()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as fh:
        fh.write(bytes(out))
    print(f"{OUT}: {len(recs)} records, {len(out)} bytes")


if __name__ == "__main__":
    main()
