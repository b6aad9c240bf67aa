#!/usr/bin/env python3
"""kernels_vs_torch.py — checks the tensor kernels against torch/transformers at the shapes and
parameters of SmolVLM-256M (pixel shuffle s=4, RoPE theta 1e5 head_dim 64, GELU, norms, causal
GQA attention, matmul with k = 12288) through a shared library of the kernel sources.

Build the library first (default-visibility build of src/util + src/tensor):
  F="-std=c11 -O2 -fPIC -shared -D_GNU_SOURCE -Iinclude -Isrc"; ISA="-mavx512f -mavx512bw \
  -mavx512vl -mavx512dq -mavx512bf16 -mavx2 -mfma -mf16c"
  gcc $F $ISA src/util/{alloc,error,log,threadpool}.c src/tensor/*.c -o /tmp/libvlmk.so -lm -lpthread
then: /work/venv/bin/python scripts/kernels_vs_torch.py [/tmp/libvlmk.so]
"""
import ctypes
import sys

import numpy as np
import torch
from transformers import LlamaConfig
from transformers.models.idefics3.modeling_idefics3 import Idefics3Connector
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

L = ctypes.CDLL(sys.argv[1] if len(sys.argv) > 1 else "/tmp/libvlmk.so")
fp = ctypes.POINTER(ctypes.c_float)


def P(a):
    return a.ctypes.data_as(fp)


class Tensor(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("n_dims", ctypes.c_int), ("ne", ctypes.c_int64 * 4),
                ("data", ctypes.c_void_p), ("nbytes", ctypes.c_size_t)]


def report(name, err, tol):
    print(f"{name:36s} max abs diff {err:.3g} {'ok' if err <= tol else 'FAIL'}")
    return err <= tol


ok = True
rng = np.random.default_rng(0)
x = rng.standard_normal((1024, 768)).astype(np.float32)
y = np.zeros((64, 768 * 16), np.float32)
L.vlm_pixel_shuffle(P(y), P(x), 1024, 768, 4)
ref = Idefics3Connector.pixel_shuffle(None, torch.from_numpy(x)[None], 4)[0].numpy()
ok &= report("pixel_shuffle s=4", np.abs(y - ref).max(), 0)

cfg = LlamaConfig(hidden_size=576, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                  rope_theta=100000, max_position_embeddings=8192)
rot = LlamaRotaryEmbedding(cfg)
T = 200
q = rng.standard_normal((T, 9, 64)).astype(np.float32)
pos = np.arange(T, dtype=np.int32)
qt = torch.from_numpy(q.copy()).permute(1, 0, 2)[None]
cos, sin = rot(qt, torch.from_numpy(pos.astype(np.int64))[None])
qr = apply_rotary_pos_emb(qt, qt, cos, sin)[0][0].permute(1, 0, 2).numpy()
qc = q.copy()
L.vlm_rope(P(qc), T, 9, 64, pos.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), ctypes.c_float(1e5), 64)
ok &= report("rope theta 1e5 hd 64", np.abs(qc - qr).max(), 2e-6)

g = rng.standard_normal(100000).astype(np.float32) * 4
for name, fn, tf in (("gelu_tanh", L.vlm_gelu_tanh, lambda t: torch.nn.functional.gelu(t, approximate="tanh")),
                     ("gelu_erf", L.vlm_gelu_erf, torch.nn.functional.gelu),
                     ("silu", L.vlm_silu, torch.nn.functional.silu)):
    gc = g.copy()
    fn(P(gc), ctypes.c_size_t(g.size))
    ok &= report(name, np.abs(gc - tf(torch.from_numpy(g)).numpy()).max(), 5e-6)

xs = (rng.standard_normal((64, 768)) * 3 + 1).astype(np.float32)
w = rng.standard_normal(768).astype(np.float32)
b = rng.standard_normal(768).astype(np.float32)
o = np.zeros_like(xs)
L.vlm_layernorm(P(o), P(xs), P(w), P(b), 64, 768, ctypes.c_float(1e-6))
ref = torch.nn.functional.layer_norm(torch.from_numpy(xs), (768,), torch.from_numpy(w), torch.from_numpy(b), 1e-6)
ok &= report("layernorm", np.abs(o - ref.numpy()).max(), 1e-5)
L.vlm_rmsnorm(P(o), P(xs), P(w), 64, 768, ctypes.c_float(1e-5))
xt = torch.from_numpy(xs)
ref = xt * torch.rsqrt(xt.pow(2).mean(-1, keepdim=True) + 1e-5) * torch.from_numpy(w)
ok &= report("rmsnorm", np.abs(o - ref.numpy()).max(), 1e-5)

n = 79
qq = rng.standard_normal((n, 9, 64)).astype(np.float32)
kk = rng.standard_normal((n, 3, 64)).astype(np.float32)
vv = rng.standard_normal((n, 3, 64)).astype(np.float32)
o = np.zeros((n, 9 * 64), np.float32)
L.vlm_attention(None, P(o), P(qq), n, P(kk), P(vv), n, 9, 3, 64, ctypes.c_size_t(192),
                ctypes.c_float(0.125), 1, 0, None)
Q = torch.from_numpy(qq).permute(1, 0, 2)
K = torch.from_numpy(kk).permute(1, 0, 2).repeat_interleave(3, 0)
V = torch.from_numpy(vv).permute(1, 0, 2).repeat_interleave(3, 0)
R = torch.nn.functional.scaled_dot_product_attention(Q[None], K[None], V[None], is_causal=True)
ok &= report("attention causal GQA 9/3", np.abs(o - R[0].permute(1, 0, 2).reshape(n, -1).numpy()).max(), 1e-5)

for (m, nn, k) in [(64, 576, 12288), (1, 576, 12288), (1024, 768, 768)]:
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((nn, k)) * 0.02).astype(np.float32)
    y = np.zeros((m, nn), np.float32)
    t = Tensor(0, 2, (ctypes.c_int64 * 4)(nn, k, 0, 0), w.ctypes.data, w.nbytes)
    L.vlm_matmul(None, P(x), m, ctypes.byref(t), None, P(y))
    ok &= report(f"matmul f32 {m}x{nn}x{k}", np.abs(y - x.astype(np.float64) @ w.astype(np.float64).T).max(), 2e-5)
sys.exit(0 if ok else 1)
