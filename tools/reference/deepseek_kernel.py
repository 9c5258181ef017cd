"""Plain-PyTorch stand-ins for the TileLang kernels that DeepSeek-V4's official
inference/model.py imports (`from kernel import ...`). TileLang is not on the GPU
machine, so these re-implement each kernel's semantics (as the current revision of
DeepSeek's inference/kernel.py defines them) in ordinary tensor code:

  act_quant        1 x block FP8 e4m3 quantization, power-of-two (ue8m0) scales;
                   inplace=True is the FP8 quantize-dequantize QAT simulation
  fp4_act_quant    1 x 32 E2M1 quantize-dequantize (inplace QAT simulation only)
  fp8_gemm         FP8 x FP8 with per-128 scales, fp32 partial per K block
  fp4_gemm         FP8 activations x packed E2M1 weights with 1 x 32 E8M0 scales
  sparse_attn      gathered attention with a sink, online softmax over blocks of 64,
                   probabilities rounded to bf16 for P.V, fp32 denominators
  hc_split_sinkhorn  mHC pre / post / Sinkhorn-normalized comb
  hadamard_transform fp32 Sylvester Hadamard, scaled, back to the input dtype
"""
import torch

FP8_MAX = 448.0
FP4_MAX = 6.0
E2M1_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def _pow2_ceil(t):
    """2^ceil(log2(t)) from the fp32 exponent bits, as the TileLang kernels do."""
    bits = t.to(torch.float32).contiguous().view(torch.int32)
    exp = ((bits >> 23) & 0xFF) - 127 + ((bits & 0x7FFFFF) != 0).to(torch.int32)
    return ((exp + 127) << 23).view(torch.float32)


def act_quant(x, block_size=128, scale_fmt=None, scale_dtype=torch.float32, inplace=False):
    N = x.size(-1)
    assert N % block_size == 0
    xb = x.float().unflatten(-1, (N // block_size, block_size))
    amax = xb.abs().amax(-1).clamp_min(1e-4)
    inv = torch.tensor(1.0 / FP8_MAX, dtype=torch.float32, device=x.device)
    s = _pow2_ceil(amax * inv) if scale_fmt is not None else amax * inv
    q = (xb / s.unsqueeze(-1)).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    if inplace:
        x.copy_((q.float() * s.unsqueeze(-1)).flatten(-2).to(x.dtype))
        return x
    return q.flatten(-2).contiguous(), s.to(scale_dtype).contiguous()


def _e2m1_round(v):
    """Round fp32 values in [-6, 6] to the nearest E2M1 value, ties to the even code."""
    a = v.abs()
    code = ((a > 0.25).int() + (a >= 0.75).int() + (a > 1.25).int() + (a >= 1.75).int()
            + (a > 2.5).int() + (a >= 3.5).int() + (a > 5.0).int())
    lut = torch.tensor(E2M1_VALUES[:8], dtype=torch.float32, device=v.device)
    mag = lut[code.long()]
    return torch.where(torch.signbit(v), -mag, mag)


def fp4_act_quant(x, block_size=32, inplace=False):
    assert inplace, "only the quantize-dequantize simulation is used by model.py"
    N = x.size(-1)
    xb = x.float().unflatten(-1, (N // block_size, block_size))
    amax = xb.abs().amax(-1).clamp_min(FP4_MAX * 2.0 ** -126)
    inv = torch.tensor(1.0 / FP4_MAX, dtype=torch.float32, device=x.device)
    s = _pow2_ceil(amax * inv).unsqueeze(-1)
    y = _e2m1_round((xb / s).clamp(-FP4_MAX, FP4_MAX)) * s
    x.copy_(y.flatten(-2).to(x.dtype))
    return x


def _e8m0_to_f32(s):
    if s.dtype == torch.float8_e8m0fnu:
        e = s.view(torch.uint8).to(torch.int32)
        return (e << 23).view(torch.float32)  # exact for e in 1..254 (DeepSeek never stores 0 or 255)
    return s.float()


def fp8_gemm(a, a_s, b, b_s, scale_dtype=torch.float32):
    K = a.size(-1)
    M = a.numel() // K
    N = b.size(0)
    a2 = a.reshape(M, K).float()
    sa = _e8m0_to_f32(a_s).reshape(M, -1)
    sb = _e8m0_to_f32(b_s)
    bf = b.float()
    acc = torch.zeros(M, N, dtype=torch.float32, device=a.device)
    for kb in range((K + 127) // 128):
        ks = slice(kb * 128, min(K, (kb + 1) * 128))
        partial = a2[:, ks] @ bf[:, ks].T
        scale_b = sb[:, kb].repeat_interleave(128)[:N]
        acc += partial * (sa[:, kb:kb + 1] * scale_b[None, :])
    return acc.to(torch.get_default_dtype()).reshape(*a.shape[:-1], N)


def _unpack_fp4(b):
    p = b.view(torch.uint8)
    codes = torch.stack([p & 0xF, p >> 4], dim=-1).flatten(-2)
    lut = torch.tensor(E2M1_VALUES, dtype=torch.float32, device=b.device)
    return lut[codes.long()]


def fp4_gemm(a, a_s, b, b_s, scale_dtype=torch.float32):
    K = a.size(-1)
    M = a.numel() // K
    N = b.size(0)
    a2 = a.reshape(M, K).float()
    sa = _e8m0_to_f32(a_s).reshape(M, -1)
    sb = _e8m0_to_f32(b_s)
    w = _unpack_fp4(b)
    acc = torch.zeros(M, N, dtype=torch.float32, device=a.device)
    for kb in range(K // 32):
        ks = slice(kb * 32, (kb + 1) * 32)
        partial = a2[:, ks] @ w[:, ks].T
        acc += partial * sa[:, kb // 4:kb // 4 + 1] * sb[None, :, kb]
    return acc.to(torch.get_default_dtype()).reshape(*a.shape[:-1], N)


def sparse_attn(q, kv, attn_sink, topk_idxs, softmax_scale):
    b, m, h, d = q.shape
    idx = topk_idxs.long()
    topk = idx.size(-1)
    qf = q.float()
    sink = attn_sink.float()
    acc_o = torch.zeros(b, m, h, d, dtype=torch.float32, device=q.device)
    sum_exp = torch.zeros(b, m, h, dtype=torch.float32, device=q.device)
    run_max = torch.full((b, m, h), float("-inf"), dtype=torch.float32, device=q.device)
    batch = torch.arange(b, device=q.device).view(b, 1, 1)
    for start in range(0, topk, 64):
        blk = idx[..., start:start + 64]
        valid = blk != -1
        gathered = kv[batch, blk.clamp_min(0)].float() * valid.unsqueeze(-1)  # [b, m, blk, d]
        s = torch.einsum("bmhd,bmkd->bmhk", qf, gathered)
        s = torch.where(valid.unsqueeze(2), s, torch.tensor(float("-inf"), device=q.device)) * softmax_scale
        new_max = torch.maximum(run_max, s.amax(-1))
        rescale = torch.exp(run_max - new_max)
        p = torch.exp(s - new_max.unsqueeze(-1))
        sum_exp = sum_exp * rescale + p.sum(-1)
        acc_o = acc_o * rescale.unsqueeze(-1) + torch.einsum(
            "bmhk,bmkd->bmhd", p.to(torch.bfloat16).float(), gathered.to(torch.bfloat16).float())
        run_max = new_max
    sum_exp = sum_exp + torch.exp(sink.view(1, 1, h) - run_max)
    return (acc_o / sum_exp.unsqueeze(-1)).to(torch.bfloat16)


def hc_split_sinkhorn(mixes, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, eps=1e-6):
    hc = hc_mult
    mixes = mixes.float()
    pre = torch.sigmoid(mixes[..., :hc] * hc_scale[0] + hc_base[:hc]) + eps
    post = 2 * torch.sigmoid(mixes[..., hc:2 * hc] * hc_scale[1] + hc_base[hc:2 * hc])
    comb = (mixes[..., 2 * hc:] * hc_scale[2] + hc_base[2 * hc:]).unflatten(-1, (hc, hc))
    comb = torch.softmax(comb, dim=-1) + eps
    comb = comb / (comb.sum(-2, keepdim=True) + eps)
    for _ in range(sinkhorn_iters - 1):
        comb = comb / (comb.sum(-1, keepdim=True) + eps)
        comb = comb / (comb.sum(-2, keepdim=True) + eps)
    return pre, post, comb


def _hadamard(n, device):
    i = torch.arange(n, device=device)
    bits = (i.view(-1, 1) & i.view(1, -1))
    parity = torch.zeros_like(bits)
    while bool(bits.any()):
        parity ^= bits & 1
        bits = bits >> 1
    return 1.0 - 2.0 * parity.float()


def hadamard_transform(x, scale=1.0):
    H = _hadamard(x.size(-1), x.device)
    return ((x.float() @ H) * scale).to(x.dtype)
