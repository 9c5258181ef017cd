"""The default model's DeepSeek-V4 configuration and the checks that it keeps
every architectural feature (DeepSeek-V4's config.json; the test presets of
src/checkpoint/test_model.cpp).

Shape: D = 256, 6 layers, 4 query heads of 128 (64 of them RoPE), one shared
K=V head, q_lora 128, 2 output groups of rank 128, 8 routed experts (2 per
token) of width 256 plus one shared expert, mHC with 4 streams. Every GEMM K
dimension is a multiple of 128 (so of 32 for MXFP4/NVFP4 and of 128 for FP8
blocks). Layer schedule, Flash-like:

  layer  attention               FFN routing
  0      SWA (window 64)         hash (tid2eid)
  1      CSA (r = 4, indexer)    hash (tid2eid)
  2      HCA (r = 16)            learned (sqrtsoftplus, bias-corrected top-2)
  3      CSA                     learned
  4      HCA                     learned
  5      CSA                     learned

HCA uses r = 16 instead of Flash's 128 so that the 512-token training windows
hold 32 compressed entries per HCA layer; CSA keeps r = 4 and its indexer keeps
the top 16 of up to 128 entries, so the top-k selection really prunes. RoPE
keeps DeepSeek's constants: theta 10000 on SWA layers, 160000 with YaRN
(factor 16 over 65536) on compressed layers; max_position_embeddings stays
1048576 = 16 x 65536 because transformers derives the YaRN factor from that
ratio in some versions. transformers does not implement MTP, so the model has
no MTP block and says so: num_nextn_predict_layers = 0.
"""

from __future__ import annotations

import math

import torch

SWA, CSA, HCA = "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"


def config_kwargs(vocab_size: int) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=256,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=128,
        partial_rotary_factor=0.5,          # qk_rope_head_dim = 64
        q_lora_rank=128,
        o_groups=2,
        o_lora_rank=128,
        sliding_window=64,
        layer_types=[SWA, CSA, HCA, CSA, HCA, CSA],
        compress_rates={CSA: 4, HCA: 16},
        index_n_heads=4,
        index_head_dim=128,
        index_topk=16,
        n_routed_experts=8,
        n_shared_experts=1,
        num_experts_per_tok=2,
        moe_intermediate_size=256,
        mlp_layer_types=["hash_moe", "hash_moe", "moe", "moe", "moe", "moe"],
        scoring_func="sqrtsoftplus",
        norm_topk_prob=True,
        routed_scaling_factor=1.5,
        swiglu_limit=10.0,
        hc_mult=4,
        hc_sinkhorn_iters=20,
        hc_eps=1e-6,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        compress_rope_theta=160000.0,
        rope_parameters={"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 65536,
                         "beta_fast": 32.0, "beta_slow": 1.0},
        max_position_embeddings=1048576,
        num_nextn_predict_layers=0,
        hidden_act="silu",
        attention_bias=False,
        tie_word_embeddings=False,
        initializer_range=0.02,
        bos_token_id=0,
        eos_token_id=1,
        use_cache=True,
    )


def spec_yarn_inv_freq(base: float, rope_dim: int = 64, factor: float = 16.0, original: int = 65536,
                       beta_fast: float = 32.0, beta_slow: float = 1.0) -> list[float]:
    """DeepSeek's YaRN frequencies written from DeepSeek's inference/model.py, in float64,
    independently of transformers."""
    def correction(rotations: float) -> float:
        return rope_dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))
    low = max(math.floor(correction(beta_fast)), 0)
    high = min(math.ceil(correction(beta_slow)), rope_dim - 1)
    if low == high:
        high += 0.001
    freqs = []
    for i in range(rope_dim // 2):
        f = 1.0 / base ** (2 * i / rope_dim)
        ramp = min(max((i - low) / (high - low), 0.0), 1.0)
        freqs.append(f / factor * ramp + f * (1 - ramp))
    return freqs


def check_architecture(model, config) -> dict:
    """Asserts the instantiated model has every feature the config promises;
    returns a summary for the metrics."""
    from transformers.models.deepseek_v4 import modeling_deepseek_v4 as m

    layers = model.model.layers
    found = {"swa": 0, "csa": 0, "hca": 0, "indexer": 0, "hash": 0, "learned": 0}
    for i, layer in enumerate(layers):
        compressor = layer.self_attn.compressor
        kind = config.layer_types[i]
        if kind == SWA:
            assert compressor is None, f"layer {i}: SWA layer has a compressor"
            found["swa"] += 1
        elif kind == CSA:
            assert isinstance(compressor, m.DeepseekV4CSACompressor), f"layer {i}: no CSA compressor"
            assert isinstance(compressor.indexer, m.DeepseekV4Indexer), f"layer {i}: CSA without indexer"
            found["csa"] += 1
            found["indexer"] += 1
        else:
            assert isinstance(compressor, m.DeepseekV4HCACompressor), f"layer {i}: no HCA compressor"
            found["hca"] += 1
        gate = layer.mlp.gate
        if config.mlp_layer_types[i] == "hash_moe":
            assert isinstance(gate, m.DeepseekV4HashRouter), f"layer {i}: not hash-routed"
            found["hash"] += 1
        else:
            assert isinstance(gate, m.DeepseekV4TopKRouter), f"layer {i}: not learned-routed"
            found["learned"] += 1
        assert layer.mlp.shared_experts is not None, f"layer {i}: no shared expert"
        assert layer.attn_hc.hc_mult == 4 and layer.ffn_hc.hc_mult == 4, f"layer {i}: mHC streams != 4"
    assert all(v > 0 for v in found.values()), f"a feature is missing: {found}"

    rotary = model.model.rotary_emb
    main = rotary.main_inv_freq.double().cpu().tolist()
    compress = rotary.compress_inv_freq.double().cpu().tolist()
    want_main = [1.0 / config.rope_theta ** (2 * i / 64) for i in range(32)]
    want_compress = spec_yarn_inv_freq(config.compress_rope_theta)
    worst_main = max(abs(a - b) / b for a, b in zip(main, want_main))
    worst_compress = max(abs(a - b) / b for a, b in zip(compress, want_compress))
    assert len(main) == 32 and worst_main < 1e-5, f"main RoPE differs from the spec: {worst_main}"
    assert len(compress) == 32 and worst_compress < 1e-5, f"compress RoPE (YaRN) differs from the spec: {worst_compress}"
    assert getattr(rotary, "compress_attention_scaling", 1.0) == 1.0, "YaRN mscale must be 1"
    return {**found, "rope_main_max_rel_err": worst_main, "rope_compress_max_rel_err": worst_compress}


def fill_hash_tables(model, config, seed: int) -> None:
    """tid2eid of every hash layer: for each token id, k distinct experts drawn
    at random (transformers leaves the table zero, which would send every
    token k times to expert 0). A different table per layer."""
    for i, layer in enumerate(model.model.layers):
        if config.mlp_layer_types[i] != "hash_moe":
            continue
        generator = torch.Generator().manual_seed(seed * 1000 + i)
        table = torch.rand(config.vocab_size, config.n_routed_experts, generator=generator).argsort(dim=1)
        gate = layer.mlp.gate
        gate.tid2eid.copy_(table[:, : config.num_experts_per_tok].to(gate.tid2eid.dtype))


def count_parameters(model, config) -> dict:
    """Total parameters, and those used per token (shared parts plus k of E
    experts in each layer)."""
    total = sum(p.numel() for p in model.parameters())
    experts = sum(p.numel() for n, p in model.named_parameters() if ".mlp.experts." in n)
    active = total - experts + experts * config.num_experts_per_tok // config.n_routed_experts
    return {"total": total, "routed_experts": experts, "active_per_token": active,
            "embedding": model.model.embed_tokens.weight.numel(), "lm_head": model.lm_head.weight.numel()}
