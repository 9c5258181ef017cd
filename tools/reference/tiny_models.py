"""Tiny random DeepSeek-V4 models for parity fixtures, and the weight encoders.

Everything here is written from the public definitions (DeepSeek's inference/model.py and
convert.py, the OCP MX v1.0 spec, NVIDIA ModelOpt's NVFP4 layout), independently of fp4serve's C++ code, so the
checkpoints it writes are an outside producer for the loader and the model.

Masters are drawn in fp32 and rounded to bf16 values, so every storage dtype
(BF16, F32) holds them exactly and every reference runs on identical numbers.
"""
import json
import math
import os

import torch
from safetensors.torch import save_file

E2M1_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]

# Two layer patterns with compress rates scaled down (window 8, HCA rate 8 or 16,
# indexer top-3) so that ring wrap, compression boundaries and top-k pruning all
# happen within 40 tokens.
MODELS = {
    "flash": dict(compress_ratios=[0, 4, 8, 4], num_hash_layers=2, swiglu_limit=1.0),
    "pro": dict(compress_ratios=[16, 16, 4, 16], num_hash_layers=3, swiglu_limit=10.0),
}

COMMON = dict(
    vocab_size=256, hidden_size=128, moe_intermediate_size=128, num_attention_heads=4, head_dim=128,
    qk_rope_head_dim=64, q_lora_rank=128, o_groups=2, o_lora_rank=128, sliding_window=8,
    index_n_heads=4, index_head_dim=128, index_topk=3, n_routed_experts=4, n_shared_experts=1,
    num_experts_per_tok=2, routed_scaling_factor=1.5, rope_theta=10000.0, compress_rope_theta=160000.0,
    yarn_factor=16.0, yarn_original=65536, beta_fast=32.0, beta_slow=1.0, hc_mult=4,
    hc_sinkhorn_iters=20, hc_eps=1e-6, rms_norm_eps=1e-6, max_position_embeddings=1048576,
)

SEQ_LEN = 40
DECODE_SPLIT = 17  # prefill this many tokens, then decode the rest one at a time


def model_config(name):
    cfg = dict(COMMON)
    cfg.update(MODELS[name])
    cfg["num_hidden_layers"] = len(cfg["compress_ratios"])
    return cfg


def bf16_round(t):
    return t.to(torch.bfloat16).to(torch.float32)


def make_masters(name, seed):
    """Canonical (DeepSeek-native) name -> fp32 tensor of bf16-representable values."""
    cfg = model_config(name)
    g = torch.Generator().manual_seed(seed)
    D, V, H, hd, ql = cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"], cfg["head_dim"], cfg["q_lora_rank"]
    G, R, I, E = cfg["o_groups"], cfg["o_lora_rank"], cfg["moe_intermediate_size"], cfg["n_routed_experts"]
    hc, nih, ihd = cfg["hc_mult"], cfg["index_n_heads"], cfg["index_head_dim"]
    m = {}

    def normal(shape, std, mean=0.0):
        return bf16_round(torch.randn(*shape, generator=g) * std + mean)

    def linear(name_, out_f, in_f, gain=1.0):
        m[name_ + ".weight"] = normal((out_f, in_f), gain / math.sqrt(in_f))

    def norm(name_, n):
        m[name_ + ".weight"] = normal((n,), 0.1, 1.0)

    def hc_site(prefix, rows):
        m[prefix + "_fn"] = normal((rows, hc * D), 0.02)
        m[prefix + "_base"] = normal((rows,), 0.1)
        m[prefix + "_scale"] = normal((3 if rows != hc else 1,), 0.1, 1.0)

    m["embed.weight"] = normal((V, D), 1.0)
    m["head.weight"] = normal((V, D), 1.0 / math.sqrt(D))
    norm("norm", D)
    hc_site("hc_head", hc)
    for i, r in enumerate(cfg["compress_ratios"]):
        p = f"layers.{i}."
        norm(p + "attn_norm", D)
        norm(p + "ffn_norm", D)
        hc_site(p + "hc_attn", (2 + hc) * hc)
        hc_site(p + "hc_ffn", (2 + hc) * hc)
        m[p + "attn.attn_sink"] = normal((H,), 1.0)
        linear(p + "attn.wq_a", ql, D)
        norm(p + "attn.q_norm", ql)
        linear(p + "attn.wq_b", H * hd, ql)
        linear(p + "attn.wkv", hd, D)
        norm(p + "attn.kv_norm", hd)
        linear(p + "attn.wo_a", G * R, H * hd // G, 0.5)
        linear(p + "attn.wo_b", D, G * R, 0.5)
        if r > 0:
            coff = 2 if r == 4 else 1
            linear(p + "attn.compressor.wkv", coff * hd, D)
            linear(p + "attn.compressor.wgate", coff * hd, D)
            m[p + "attn.compressor.ape"] = normal((r, coff * hd), 0.1)
            norm(p + "attn.compressor.norm", hd)
        if r == 4:
            linear(p + "attn.indexer.wq_b", nih * ihd, ql)
            linear(p + "attn.indexer.weights_proj", nih, D)
            linear(p + "attn.indexer.compressor.wkv", 2 * ihd, D)
            linear(p + "attn.indexer.compressor.wgate", 2 * ihd, D)
            m[p + "attn.indexer.compressor.ape"] = normal((4, 2 * ihd), 0.1)
            norm(p + "attn.indexer.compressor.norm", ihd)
        linear(p + "ffn.gate", E, D)
        if i < cfg["num_hash_layers"]:
            k = cfg["num_experts_per_tok"]
            m[p + "ffn.gate.tid2eid"] = torch.stack([torch.randperm(E, generator=g)[:k] for _ in range(V)]).to(torch.int64)
        else:
            m[p + "ffn.gate.bias"] = normal((E,), 0.1)
        for w, (o, i_) in (("w1", (I, D)), ("w3", (I, D)), ("w2", (D, I))):
            gain = 0.5 if w == "w2" else 1.0
            linear(p + f"ffn.shared_experts.{w}", o, i_, gain)
            for e in range(E):
                linear(p + f"ffn.experts.{e}.{w}", o, i_, gain)
    return m


# ---------------------------------------------------------------- encoders

def pow2_ceil_exponent(t):
    """ceil(log2(t)) of positive fp32 values, from the exponent bits (DeepSeek's rule)."""
    bits = t.to(torch.float32).contiguous().view(torch.int32)
    exp = ((bits >> 23) & 0xFF) - 127
    return exp + ((bits & 0x7FFFFF) != 0).to(torch.int32)


def e2m1_encode(x):
    """fp32 -> 4-bit E2M1 codes, round to nearest, ties to the even code, saturating at 6."""
    a = x.abs()
    code = ((a > 0.25).int() + (a >= 0.75).int() + (a > 1.25).int() + (a >= 1.75).int()
            + (a > 2.5).int() + (a >= 3.5).int() + (a > 5.0).int())
    sign = torch.signbit(x).int() << 3
    return (code | sign).to(torch.uint8)


def e2m1_decode(codes):
    lut = torch.tensor(E2M1_VALUES, dtype=torch.float32)
    return lut[codes.long()]


def pack_nibbles(codes):
    """[N, K] codes -> [N, K/2] bytes, low nibble = even k."""
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).to(torch.uint8)


def unpack_nibbles(packed):
    p = packed.view(torch.uint8)
    out = torch.empty(p.shape[0], p.shape[1] * 2, dtype=torch.uint8)
    out[:, 0::2] = p & 0xF
    out[:, 1::2] = p >> 4
    return out


def quantize_fp8_block(w):
    """DeepSeek FP8 block-128 weight: (F8_E4M3 [N,K], E8M0 bytes [ceil(N/128), ceil(K/128)])."""
    N, K = w.shape
    nb, kb = (N + 127) // 128, (K + 127) // 128
    exps = torch.zeros(nb, kb, dtype=torch.int32)
    q = torch.zeros(N, K, dtype=torch.float8_e4m3fn)
    for i in range(nb):
        for j in range(kb):
            blk = w[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
            amax = blk.abs().max().clamp_min(1e-4)
            e = int(pow2_ceil_exponent(amax / 448.0))
            exps[i, j] = e
            q[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = (blk / 2.0 ** e).clamp(-448, 448).to(torch.float8_e4m3fn)
    return q, (exps + 127).to(torch.uint8)


def dequantize_fp8_block(q, scale_bytes):
    w = q.to(torch.float32)
    s = torch.pow(2.0, scale_bytes.to(torch.float32) - 127)
    s = s.repeat_interleave(128, 0)[: w.shape[0]].repeat_interleave(128, 1)[:, : w.shape[1]]
    return w * s


def quantize_mxfp4(w):
    """DeepSeek FP4 expert weight: (I8 [N, K/2] packed, E8M0 bytes [N, K/32])."""
    N, K = w.shape
    blk = w.view(N, K // 32, 32)
    amax = blk.abs().amax(-1).clamp_min(6 * 2.0 ** -126)
    e = pow2_ceil_exponent(amax * (1.0 / 6.0))
    codes = e2m1_encode((blk / torch.pow(2.0, e.float()).unsqueeze(-1)).clamp(-6, 6)).view(N, K)
    return pack_nibbles(codes).view(torch.int8), (e + 127).to(torch.uint8)


def dequantize_mxfp4(packed, scale_bytes):
    vals = e2m1_decode(unpack_nibbles(packed))
    N, K = vals.shape
    s = torch.pow(2.0, scale_bytes.to(torch.float32) - 127)
    return (vals.view(N, K // 32, 32) * s.unsqueeze(-1)).view(N, K)


def quantize_nvfp4(w):
    """ModelOpt NVFP4: (U8 [N,K/2], F8_E4M3 [N,K/16], weight_scale_2 fp32 scalar)."""
    N, K = w.shape
    gs = (w.abs().max() / 2688.0).to(torch.float32)
    blk = w.view(N, K // 16, 16)
    s = blk.abs().amax(-1) / (6.0 * gs)
    s = torch.where(s == 0, torch.ones_like(s), s).clamp(2.0 ** -9, 448.0)
    sf = s.to(torch.float8_e4m3fn)
    denom = (sf.to(torch.float32) * gs).unsqueeze(-1)
    codes = e2m1_encode(blk / denom).view(N, K)
    return pack_nibbles(codes), sf, gs


def dequantize_nvfp4(packed, sf, gs):
    vals = e2m1_decode(unpack_nibbles(packed))
    N, K = vals.shape
    return (vals.view(N, K // 16, 16) * (sf.to(torch.float32) * gs).unsqueeze(-1)).view(N, K)


# ------------------------------------------------------ which tensor is what

def is_fp8_linear(name):
    """DeepSeek-native: FP8 block-128 for attention, shared experts, indexer wq_b (as DeepSeek's checkpoints store them)."""
    if ".experts." in name and ".shared_experts." not in name:
        return False
    keys = ("attn.wq_a.", "attn.wq_b.", "attn.wkv.", "attn.wo_a.", "attn.wo_b.", "attn.indexer.wq_b.",
            "ffn.shared_experts.")
    return name.endswith(".weight") and any(k in name for k in keys)


def is_routed_expert(name):
    return ".ffn.experts." in name and name.endswith(".weight")


F32_SUFFIXES = ("_fn", "_base", "_scale", "attn_sink", ".ape", "gate.bias")


def native_checkpoint(masters):
    """DeepSeek-native tensors: FP8 + E8M0 scales, MXFP4 experts, BF16/F32/I64 rest."""
    out = {}
    for name, t in masters.items():
        if is_fp8_linear(name):
            q, s = quantize_fp8_block(t)
            out[name] = q
            out[name[: -len(".weight")] + ".scale"] = s.view(torch.float8_e8m0fnu)
        elif is_routed_expert(name):
            q, s = quantize_mxfp4(t)
            out[name] = q
            out[name[: -len(".weight")] + ".scale"] = s.view(torch.float8_e8m0fnu)
        elif t.dtype == torch.int64:
            out[name] = t
        elif name.endswith(F32_SUFFIXES):
            out[name] = t.to(torch.float32)
        else:
            out[name] = t.to(torch.bfloat16)
    return out


def dequantized_native(native):
    """The native checkpoint's weights as fp32 masters (what transformers runs on)."""
    out = {}
    for name, t in native.items():
        if name.endswith(".scale") and not name.endswith("_scale"):
            continue
        if t.dtype == torch.float8_e4m3fn:
            out[name] = dequantize_fp8_block(t, native[name[: -len(".weight")] + ".scale"].view(torch.uint8))
        elif t.dtype == torch.int8:
            out[name] = dequantize_mxfp4(t, native[name[: -len(".weight")] + ".scale"].view(torch.uint8))
        elif t.dtype == torch.int64:
            out[name] = t
        else:
            out[name] = t.to(torch.float32)
    return out


def native_config_json(name):
    cfg = model_config(name)
    return {
        "architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4",
        "vocab_size": cfg["vocab_size"], "hidden_size": cfg["hidden_size"],
        "num_hidden_layers": cfg["num_hidden_layers"], "num_nextn_predict_layers": 0,
        "num_attention_heads": cfg["num_attention_heads"], "num_key_value_heads": 1,
        "head_dim": cfg["head_dim"], "qk_rope_head_dim": cfg["qk_rope_head_dim"],
        "q_lora_rank": cfg["q_lora_rank"], "o_lora_rank": cfg["o_lora_rank"], "o_groups": cfg["o_groups"],
        "sliding_window": cfg["sliding_window"], "compress_ratios": cfg["compress_ratios"],
        "compress_rope_theta": cfg["compress_rope_theta"], "rope_theta": cfg["rope_theta"],
        "rope_scaling": {"type": "yarn", "factor": cfg["yarn_factor"],
                         "original_max_position_embeddings": cfg["yarn_original"],
                         "beta_fast": cfg["beta_fast"], "beta_slow": cfg["beta_slow"]},
        "max_position_embeddings": cfg["max_position_embeddings"],
        "index_n_heads": cfg["index_n_heads"], "index_head_dim": cfg["index_head_dim"],
        "index_topk": cfg["index_topk"], "n_routed_experts": cfg["n_routed_experts"],
        "n_shared_experts": cfg["n_shared_experts"], "num_experts_per_tok": cfg["num_experts_per_tok"],
        "moe_intermediate_size": cfg["moe_intermediate_size"], "num_hash_layers": cfg["num_hash_layers"],
        "scoring_func": "sqrtsoftplus", "topk_method": "noaux_tc", "norm_topk_prob": True,
        "routed_scaling_factor": cfg["routed_scaling_factor"], "swiglu_limit": cfg["swiglu_limit"],
        "hidden_act": "silu", "hc_mult": cfg["hc_mult"], "hc_sinkhorn_iters": cfg["hc_sinkhorn_iters"],
        "hc_eps": cfg["hc_eps"], "rms_norm_eps": cfg["rms_norm_eps"], "expert_dtype": "fp4",
        "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                "scale_fmt": "ue8m0", "weight_block_size": [128, 128]},
        "tie_word_embeddings": False, "attention_bias": False, "bos_token_id": 0, "eos_token_id": 1,
        "torch_dtype": "bfloat16",
    }


def write_native(dirname, name, native):
    os.makedirs(dirname, exist_ok=True)
    save_file({k: v.contiguous() for k, v in native.items()}, os.path.join(dirname, "model.safetensors"))
    with open(os.path.join(dirname, "config.json"), "w") as f:
        json.dump(native_config_json(name), f, indent=2)


def test_tokens(cfg, seed=1234):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, cfg["vocab_size"], (SEQ_LEN,), generator=g)
