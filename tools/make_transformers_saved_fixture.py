#!/usr/bin/env python3
"""Makes tests/fixtures/checkpoints/transformers_saved_tiny/: a tiny random
DeepseekV4ForCausalLM (transformers >= 5.17) saved with save_pretrained (BF16), and
transformers_saved_tiny.reference.json beside it, describing the model's IN-MEMORY
parameters (transformers' own names: self_attn.q_a_proj, fused mlp.experts.gate_up_proj,
...) with checksums of their BF16 values, so that a test can check that fp4serve maps
what save_pretrained wrote back onto the same parameters.

The config has every layer kind (sliding, compressed-sparse, heavily-compressed) and
both routings (hash_moe, moe). Every parameter and buffer is re-drawn at random so that
no two tensors hold the same values (norm weights would otherwise all be ones).

Run on a machine with torch and transformers:  python3 tools/make_transformers_saved_fixture.py OUT_DIR
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from transformers import DeepseekV4Config, DeepseekV4ForCausalLM
import transformers


def config(yarn=True):
    extra = {}
    if yarn:
        extra["rope_parameters"] = {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 65536,
                                    "beta_fast": 32.0, "beta_slow": 1.0}
    return DeepseekV4Config(
        **extra,
        vocab_size=128,
        hidden_size=64,
        moe_intermediate_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        partial_rotary_factor=0.25,  # 16 RoPE dims
        q_lora_rank=32,
        o_groups=2,
        o_lora_rank=32,
        sliding_window=8,
        layer_types=[
            "sliding_attention",
            "compressed_sparse_attention",
            "heavily_compressed_attention",
            "compressed_sparse_attention",
        ],
        compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 8},
        mlp_layer_types=["hash_moe", "hash_moe", "moe", "moe"],
        index_n_heads=2,
        index_head_dim=32,
        index_topk=2,
        n_routed_experts=4,
        n_shared_experts=1,
        num_experts_per_tok=2,
        num_nextn_predict_layers=1,
        hc_mult=4,
        hc_sinkhorn_iters=20,
        max_position_embeddings=131072,
    )


def checksum(t):
    """sum over i of bits(v_i) * (i + 1) mod 2^64 over the float32 widening of the values:
    exact, order-free, cheap to recompute in C++."""
    a = t.detach().to(torch.float32).contiguous().cpu().numpy().reshape(-1)
    bits = a.view(np.uint32).astype(np.uint64)
    idx = np.arange(1, bits.size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return int((bits * idx).sum(dtype=np.uint64))


def main():
    out_dir = sys.argv[1]
    torch.manual_seed(1234)
    try:
        cfg = config(yarn=True)
        model = DeepseekV4ForCausalLM(cfg)
    except Exception as e:  # keep going without YaRN rather than lose the device run
        print("config with YaRN failed:", repr(e))
        cfg = config(yarn=False)
        model = DeepseekV4ForCausalLM(cfg)
    persistent = set(model.state_dict().keys())
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if name not in persistent:
                continue  # e.g. RoPE tables: not saved, left as computed
            if "tid2eid" in name:
                rows = [torch.randperm(cfg.n_routed_experts, generator=gen)[: p.shape[1]] for _ in range(p.shape[0])]
                p.copy_(torch.stack(rows).to(p.dtype))
            elif p.is_floating_point():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05 + (1.0 if name.endswith("norm.weight") else 0.0))
    model = model.to(torch.bfloat16)
    state = model.state_dict()
    model.save_pretrained(out_dir)

    reference = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "in_memory": {
            name: {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "checksum": checksum(t)}
            for name, t in state.items()
        },
        "buffers_not_in_state_dict": sorted(
            n for n, _ in model.named_buffers() if n not in state
        ),
        "saved": {},
    }
    for file in sorted(os.listdir(out_dir)):
        if file.endswith(".safetensors"):
            with safe_open(os.path.join(out_dir, file), "pt") as f:
                for key in f.keys():
                    t = f.get_tensor(key)
                    reference["saved"][key] = {"file": file, "dtype": str(t.dtype).replace("torch.", ""),
                                               "shape": list(t.shape)}
    ref_path = out_dir.rstrip("/") + ".reference.json"
    with open(ref_path, "w") as f:
        json.dump(reference, f, indent=1, sort_keys=True)
    print("in-memory parameters:")
    for name, t in state.items():
        print(f"  {name} {tuple(t.shape)} {t.dtype}")
    print("saved tensors:")
    for key, info in sorted(reference["saved"].items()):
        print(f"  {key} {info['shape']} {info['dtype']}")
    print("files:", sorted(os.listdir(out_dir)), "size", sum(os.path.getsize(os.path.join(out_dir, x)) for x in os.listdir(out_dir)))
    # transformers must read its own save back into the same parameters.
    reloaded = DeepseekV4ForCausalLM.from_pretrained(out_dir, dtype=torch.bfloat16).state_dict()
    mismatched = [n for n, t in state.items() if n not in reloaded or not torch.equal(reloaded[n], t)]
    print("from_pretrained round trip:", "all parameters equal" if not mismatched else f"MISMATCH {mismatched}")


if __name__ == "__main__":
    main()
