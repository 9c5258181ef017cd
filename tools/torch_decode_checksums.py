#!/usr/bin/env python3
"""Independent decode of a checkpoint's tensors with PyTorch, for the bit-exactness
test of `fp4serve inspect --dequant` (tests/checkpoint/dequant_exactness_test.cpp).

For every stored `X.weight` the float32 value of the weight as its encoding defines it,
written from the public definitions (OCP MX v1.0 spec, NVIDIA ModelOpt's NVFP4 layout,
DeepSeek's inference/convert.py), not from fp4serve's code:
  BF16/F16/F32          the value
  F8_E4M3 + X.scale / X.weight_scale_inv (E8M0 or F32), 128x128 blocks
                        float(e4m3) * scale[n // 128, k // 128]
  I8/U8 + E8M0 X.scale  MXFP4: E2M1[nibble] * 2^(e - 127) per 1x32 block
  U8 + E4M3 X.weight_scale + F32 X.weight_scale_2
                        NVFP4: (E2M1[nibble] * float(e4m3 scale)) * weight_scale_2 per 1x16 block
  (low nibble = even k). Every other tensor that is not a scale: its float32 widening.
Writes {checkpoint folder name: {tensor name: checksum}} where checksum = sum_i bits(v_i) * (i + 1) mod 2^64 over the
float32 bit patterns in row-major order.

Usage: python3 tools/torch_decode_checksums.py OUT.json CHECKPOINT_DIR...
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open

E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
                    dtype=torch.float32)
SCALE_SUFFIXES = ("scale", "weight_scale_inv", "weight_scale", "weight_scale_2", "input_scale")


def checksum(values):
    a = values.to(torch.float32).contiguous().numpy().reshape(-1)
    bits = a.view(np.uint32).astype(np.uint64)
    idx = np.arange(1, bits.size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return int((bits * idx).sum(dtype=np.uint64))


def e8m0_to_f32(t):
    e = t.view(torch.uint8).to(torch.float64)
    return torch.pow(2.0, e - 127.0).to(torch.float32)


def scale_to_f32(t):
    if t.dtype == torch.float8_e8m0fnu:
        return e8m0_to_f32(t)
    return t.to(torch.float32)  # F32 scales, or E4M3 via torch's own cast


def unpack_e2m1(packed, n, k):
    b = packed.view(torch.uint8).to(torch.int64)
    codes = torch.stack([b & 0xF, b >> 4], dim=-1).reshape(n, k)
    return E2M1[codes]


def decode(tensors, name):
    w = tensors[name]
    module = name[: -len(".weight")]
    scale = None
    for suffix in ("scale", "weight_scale_inv", "weight_scale"):
        if f"{module}.{suffix}" in tensors:
            scale = tensors[f"{module}.{suffix}"]
    if w.dtype in (torch.bfloat16, torch.float16, torch.float32):
        return w.to(torch.float32)
    if w.dtype == torch.float8_e4m3fn:
        n, k = w.shape
        s = scale_to_f32(scale)
        s = s.repeat_interleave(128, 0)[:n].repeat_interleave(128, 1)[:, :k]
        return w.to(torch.float32) * s
    if w.dtype in (torch.uint8, torch.int8):
        n, k = w.shape[0], w.shape[1] * 2
        values = unpack_e2m1(w, n, k)
        if scale.dtype == torch.float8_e8m0fnu:
            return values * e8m0_to_f32(scale).repeat_interleave(32, 1)
        global_scale = tensors[f"{module}.weight_scale_2"].to(torch.float32).reshape(())
        return (values * scale.to(torch.float32).repeat_interleave(16, 1)) * global_scale
    raise ValueError(f"{name}: cannot decode {w.dtype}")


def checksums_of(checkpoint):
    tensors = {}
    for file in sorted(os.listdir(checkpoint)):
        if file.endswith(".safetensors"):
            with safe_open(os.path.join(checkpoint, file), "pt") as f:
                for key in f.keys():
                    tensors[key] = f.get_tensor(key)
    sums = {}
    for name, t in tensors.items():
        if name.endswith(".weight"):
            sums[name] = checksum(decode(tensors, name))
        elif name.rsplit(".", 1)[-1] not in SCALE_SUFFIXES:
            sums[name] = checksum(t.to(torch.float32))
    print(f"{checkpoint}: {len(sums)} tensors decoded")
    return sums


def main():
    out, checkpoints = sys.argv[1], sys.argv[2:]
    result = {"torch_version": torch.__version__}
    for checkpoint in checkpoints:
        result[os.path.basename(checkpoint.rstrip("/"))] = checksums_of(checkpoint)
    with open(out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
