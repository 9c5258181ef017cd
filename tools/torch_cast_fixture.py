#!/usr/bin/env python3
"""Makes tests/formats/fixtures/torch_casts.safetensors: outside references for the number formats.

Run once on the GPU machine (PyTorch 2.11, CUDA 13):
    python3 tools/torch_cast_fixture.py --out torch_casts.safetensors
It records, for a fixed deterministic set of float32 inputs (special values, every E4M3 / E2M1 /
E8M0 midpoint and its neighbours one ulp away, BF16 ties, seeded random values over wide
exponent ranges):
  * PyTorch's casts to float8_e4m3fn, float8_e8m0fnu, bfloat16 and float16, on CPU and CUDA;
  * a cast to float4_e2m1fn_x2 through every path that works (PyTorch itself if it can,
    ml_dtypes, and NVIDIA's cuda_fp4.h conversion compiled with nvcc and run on the GPU);
  * NVIDIA's cuda_fp8.h E4M3 conversions, saturating (satfinite) and not;
  * the decodes of all 256 bytes of e4m3fn, e5m2, e8m0fnu and of all 256 fp4x2 bytes.
What worked and what did not is written into the file's metadata ("report"). The file is
written without the safetensors package (the format is a JSON header and raw bytes).
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile
import traceback

import numpy as np

SEED = 20251126
E2M1_MAGNITUDES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def f32_from_bits(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def neighbours(values):
    """Each float32 value with the floats one ulp below and above it."""
    v = np.asarray(values, dtype=np.float32)
    return np.concatenate([v, np.nextafter(v, np.float32(-np.inf)), np.nextafter(v, np.float32(np.inf))])


def midpoints(sorted_magnitudes):
    m = np.asarray(sorted_magnitudes, dtype=np.float64)
    return ((m[:-1] + m[1:]) / 2).astype(np.float32)  # exact: the formats are much narrower than fp32


def e4m3_magnitudes_from_bits():
    """Finite positive E4M3FN values, only to place test inputs (the test decodes independently)."""
    out = []
    for code in range(0x7F):
        e, m = code >> 3, code & 7
        out.append(m * 2.0**-9 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))
    return out


def build_inputs():
    specials = f32_from_bits([
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFFFFFFF,
        0x7F7FFFFF, 0xFF7FFFFF, 0x00800000, 0x80800000, 0x00000001, 0x80000001, 0x00400000, 0x00600000,
        0x00200000, 0x007FFFFF, 0x7F000000, 0x7F400000, 0x7F7FFFFF, 0x3F800000, 0xBF800000,
    ])
    listed = np.array([448, 464, 465, 480, 1e6, -448, -464, -465, -480, -1e6, 6, 7, -6, -7, 5, -5, 300, 1.3,
                       1.0625, 1.1875, 0.0176, 2.0**-10, 1.5 * 2.0**-9, 2.5 * 2.0**-9, 1.2, 1.49, 1.5, 0.75, 0.3,
                       0.25, 0.1, -0.1, -0.3, 3.0, 1e-4, 1e-4 / 448], dtype=np.float32)
    e4m3 = np.asarray(e4m3_magnitudes_from_bits() + [464.0], dtype=np.float64)
    e4m3_points = neighbours(np.concatenate([e4m3[:-1], midpoints(e4m3)]).astype(np.float32))
    e2m1_points = neighbours(np.concatenate([E2M1_MAGNITUDES, midpoints(E2M1_MAGNITUDES), [7.0, 12.0]]))
    powers = np.array([2.0**k for k in range(-149, 128)], dtype=np.float32)
    e8m0_points = neighbours(np.concatenate([powers, powers * 1.5, powers * 1.25, powers * 1.75]))
    e8m0_points = e8m0_points[np.isfinite(e8m0_points)]

    rng = np.random.default_rng(SEED)
    def random_floats(count, lo_exp, hi_exp):
        exps = rng.integers(lo_exp, hi_exp + 1, size=count)
        mant = rng.random(count) + 1.0
        sign = rng.choice([-1.0, 1.0], size=count)
        return (sign * mant * np.exp2(exps.astype(np.float64))).astype(np.float32)
    bf16_ties = (rng.integers(0, 1 << 16, size=600, dtype=np.uint64) << np.uint64(16)) | np.repeat(
        np.array([0x8000, 0x7FFF, 0x8001], dtype=np.uint64), 200)
    bf16_ties = f32_from_bits(bf16_ties.astype(np.uint32))
    random = np.concatenate([
        random_floats(2000, -12, 10),                                   # where E4M3 lives
        random_floats(1000, -150, 127),                                 # everything, denormals too
        f32_from_bits(rng.integers(0, 1 << 32, size=1000, dtype=np.uint64).astype(np.uint32)),
        rng.uniform(-8.0, 8.0, size=500).astype(np.float32),            # where E2M1 lives
        bf16_ties,
    ])
    signed = lambda v: np.concatenate([v, -v])
    x = np.concatenate([specials, signed(listed), signed(e4m3_points), signed(e2m1_points), signed(e8m0_points),
                        random]).astype(np.float32)
    if x.size % 2:
        x = np.append(x, np.float32(0))
    return x


def torch_casts(torch, x, report, tensors):
    for device in ["cpu", "cuda"]:
        t = torch.from_numpy(x.copy()).to(device)
        for name, dtype, view in [("e4m3fn", torch.float8_e4m3fn, torch.uint8),
                                  ("e8m0fnu", torch.float8_e8m0fnu, torch.uint8),
                                  ("bf16", torch.bfloat16, torch.int16),
                                  ("f16", torch.float16, torch.int16)]:
            key = f"torch_{device}_{name}"
            try:
                tensors[key] = t.to(dtype).view(view).cpu().numpy()
                report[key] = "ok"
            except Exception as e:  # noqa: BLE001 - every failure is reported, none hides the rest
                report[key] = f"failed: {type(e).__name__}: {e}"
        key = f"torch_{device}_e2m1fn_x2"
        attempts = [
            ("x.view(-1, 2).to(float4_e2m1fn_x2)", lambda: t.view(-1, 2).to(torch.float4_e2m1fn_x2)),
            ("x.to(float4_e2m1fn_x2)", lambda: t.to(torch.float4_e2m1fn_x2)),
        ]
        report[key] = []
        for label, attempt in attempts:
            try:
                packed = attempt().view(torch.uint8).cpu().numpy().reshape(-1)
                if packed.size != x.size // 2:
                    raise ValueError(f"got {packed.size} bytes for {x.size} values")
                tensors[key] = packed
                report[key].append(f"{label}: ok")
                break
            except Exception as e:  # noqa: BLE001
                report[key].append(f"{label}: failed: {type(e).__name__}: {e}")

    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    for name, dtype in [("e4m3fn", torch.float8_e4m3fn), ("e5m2", torch.float8_e5m2),
                        ("e8m0fnu", torch.float8_e8m0fnu)]:
        key = f"decode_torch_{name}"
        try:
            tensors[key] = codes.view(dtype).to(torch.float32).numpy()
            cuda = codes.cuda().view(dtype).to(torch.float32).cpu().numpy()
            same = np.array_equal(tensors[key].view(np.uint32), cuda.view(np.uint32))
            report[key] = "ok" + ("" if same else " (CPU and CUDA decodes differ; CPU kept)")
        except Exception as e:  # noqa: BLE001
            report[key] = f"failed: {type(e).__name__}: {e}"
    key = "decode_torch_e2m1fn_x2"
    try:
        tensors[key] = codes.view(torch.float4_e2m1fn_x2).to(torch.float32).numpy().reshape(-1)
        report[key] = "ok"
    except Exception as e:  # noqa: BLE001
        report[key] = f"failed: {type(e).__name__}: {e}"


def ml_dtypes_casts(x, report, tensors):
    try:
        import ml_dtypes
    except Exception as e:  # noqa: BLE001
        report["ml_dtypes"] = f"unavailable: {e}"
        return
    report["ml_dtypes"] = f"version {ml_dtypes.__version__}"
    try:
        codes = x.astype(ml_dtypes.float4_e2m1fn).view(np.uint8) & 0x0F
        tensors["ml_dtypes_e2m1fn_x2"] = (codes[0::2] | (codes[1::2] << 4)).astype(np.uint8)
        nibbles = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn)
        tensors["decode_ml_dtypes_e2m1fn"] = nibbles.astype(np.float32)
        report["ml_dtypes_e2m1fn"] = "ok"
    except Exception as e:  # noqa: BLE001
        report["ml_dtypes_e2m1fn"] = f"failed: {type(e).__name__}: {e}"
    try:
        tensors["ml_dtypes_e4m3fn"] = x.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
        report["ml_dtypes_e4m3fn"] = "ok"
    except Exception as e:  # noqa: BLE001
        report["ml_dtypes_e4m3fn"] = f"failed: {type(e).__name__}: {e}"


CUDA_SOURCE = r"""
#include <cuda_fp16.h>
#include <cuda_fp4.h>
#include <cuda_fp8.h>
#include <cstdio>
#include <cstdlib>
#include <vector>

// One input element: E4M3 satfinite and non-saturating, and (for even i) the E2M1 pair (i, i+1).
__host__ __device__ void convert(const float* x, int i, unsigned char* sat, unsigned char* nosat,
                                 unsigned char* fp4) {
  sat[i] = __nv_cvt_float_to_fp8(x[i], __NV_SATFINITE, __NV_E4M3);
  nosat[i] = __nv_cvt_float_to_fp8(x[i], __NV_NOSAT, __NV_E4M3);
  if (i % 2 == 0) fp4[i / 2] = __nv_cvt_float2_to_fp4x2(make_float2(x[i], x[i + 1]), __NV_E2M1, cudaRoundNearest);
}

__host__ __device__ void decode_fp4x2(int byte, float* out) {
  __half2_raw pair = __nv_cvt_fp4x2_to_halfraw2((__nv_fp4x2_storage_t)byte, __NV_E2M1);
  __half_raw lo, hi;
  lo.x = pair.x;
  hi.x = pair.y;
  out[0] = __half2float(__half(lo));
  out[1] = __half2float(__half(hi));
}

__global__ void convert_all(const float* x, int n, unsigned char* sat, unsigned char* nosat, unsigned char* fp4,
                            float* decoded) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) convert(x, i, sat, nosat, fp4);
  if (i < 256) decode_fp4x2(i, decoded + 2 * i);
}

#define CHECK(call) do { cudaError_t e = (call); if (e != cudaSuccess) { \
  fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(e)); return 2; } } while (0)

// Usage: nv_casts IN N OUT. OUT: host sat[n] nosat[n] fp4[n/2] decoded[512 floats], then the same from the GPU.
int main(int argc, char** argv) {
  int n = atoi(argv[2]);
  std::vector<float> x(n);
  FILE* in = fopen(argv[1], "rb");
  if (!in || fread(x.data(), 4, n, in) != (size_t)n) return 1;
  fclose(in);
  std::vector<unsigned char> sat(n), nosat(n), fp4(n / 2);
  std::vector<float> decoded(512);
  FILE* out = fopen(argv[3], "wb");
  for (int i = 0; i < n; ++i) convert(x.data(), i, sat.data(), nosat.data(), fp4.data());
  for (int b = 0; b < 256; ++b) decode_fp4x2(b, decoded.data() + 2 * b);
  fwrite(sat.data(), 1, n, out); fwrite(nosat.data(), 1, n, out); fwrite(fp4.data(), 1, n / 2, out);
  fwrite(decoded.data(), 4, 512, out);
  fflush(out);
  float* dx; unsigned char *dsat, *dnosat, *dfp4; float* ddec;
  CHECK(cudaMalloc(&dx, 4 * n)); CHECK(cudaMalloc(&dsat, n)); CHECK(cudaMalloc(&dnosat, n));
  CHECK(cudaMalloc(&dfp4, n / 2)); CHECK(cudaMalloc(&ddec, 4 * 512));
  CHECK(cudaMemcpy(dx, x.data(), 4 * n, cudaMemcpyHostToDevice));
  int threads = 256, blocks = (n > 256 ? n : 256) / threads + 1;
  convert_all<<<blocks, threads>>>(dx, n, dsat, dnosat, dfp4, ddec);
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  CHECK(cudaMemcpy(sat.data(), dsat, n, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(nosat.data(), dnosat, n, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(fp4.data(), dfp4, n / 2, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(decoded.data(), ddec, 4 * 512, cudaMemcpyDeviceToHost));
  fwrite(sat.data(), 1, n, out); fwrite(nosat.data(), 1, n, out); fwrite(fp4.data(), 1, n / 2, out);
  fwrite(decoded.data(), 4, 512, out);
  fclose(out);
  return 0;
}
"""


def nvidia_casts(x, report, tensors, arch):
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "nv_casts.cu"), os.path.join(tmp, "nv_casts")
        inp, outp = os.path.join(tmp, "in.bin"), os.path.join(tmp, "out.bin")
        with open(src, "w") as f:
            f.write(CUDA_SOURCE)
        x.tofile(inp)
        try:
            subprocess.run([nvcc, "-O2", f"-gencode=arch=compute_{arch},code=sm_{arch}", "-o", exe, src],
                           check=True, capture_output=True, text=True, timeout=180)
        except Exception as e:  # noqa: BLE001
            report["nvidia"] = f"nvcc failed: {getattr(e, 'stderr', '') or e}"
            return
        run = subprocess.run([exe, inp, str(x.size), outp], capture_output=True, text=True, timeout=60)
        n = x.size
        data = open(outp, "rb").read() if os.path.exists(outp) else b""
        part = 2 * n + n // 2 + 4 * 512
        for idx, where in enumerate(["host", "device"]):
            chunk = data[idx * part:(idx + 1) * part]
            if len(chunk) != part:
                report[f"nvidia_{where}"] = f"no output (exit {run.returncode}: {run.stderr.strip()})"
                continue
            b = np.frombuffer(chunk, dtype=np.uint8)
            tensors[f"nvidia_{where}_e4m3_satfinite"] = b[:n].copy()
            tensors[f"nvidia_{where}_e4m3_nosat"] = b[n:2 * n].copy()
            tensors[f"nvidia_{where}_e2m1x2"] = b[2 * n:2 * n + n // 2].copy()
            tensors[f"decode_nvidia_{where}_e2m1x2"] = np.frombuffer(chunk[2 * n + n // 2:], dtype=np.float32).copy()
            report[f"nvidia_{where}"] = "ok"


def write_safetensors(path, tensors, metadata):
    """The safetensors layout: u64 header length, JSON header, then the raw little-endian bytes."""
    dtype_names = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
                   np.dtype(np.uint8): "U8"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        raw = arr.tobytes()
        header[name] = {"dtype": dtype_names[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--arch", default="90a", help="sm target for the NVIDIA conversion program")
    args = parser.parse_args()

    x = build_inputs()
    tensors = {"input_bits": x.view(np.int32)}
    report = {"inputs": int(x.size), "seed": SEED}
    try:
        import torch
        report["torch"] = torch.__version__
        report["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        torch_casts(torch, x, report, tensors)
    except Exception:  # noqa: BLE001
        report["torch_error"] = traceback.format_exc()
    ml_dtypes_casts(x, report, tensors)
    nvidia_casts(x, report, tensors, args.arch)

    write_safetensors(args.out, tensors, {"report": json.dumps(report)})
    print(json.dumps(report, indent=1))
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
