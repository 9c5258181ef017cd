"""Parity fixtures from Hugging Face transformers' DeepseekV4ForCausalLM (GPU machine).

For each tiny model of tiny_models.MODELS:
  <out>/<model>/bf16/       save_pretrained of the bf16-valued masters ("transformers-saved")
  <out>/<model>/native/     the same weights as DeepSeek-native FP8 block-128 + MXFP4 experts
  <out>/<model>/nvfp4/      the same weights as a ModelOpt NVFP4 export (HF names, per-expert)
  <out>/<model>/logits_transformers.safetensors
      tokens [S] I64; per-position logits [S, V] F32 of transformers run on:
      bf16_fp32 / bf16_bf16        the bf16 checkpoint, model in fp32 / in bf16
      bf16_fp32_decode             fp32, prefill DECODE_SPLIT tokens then one token at a time
      native_fp32 / native_bf16    the dequantized native checkpoint
      nvfp4_fp32 / nvfp4_bf16      the dequantized NVFP4 checkpoint
Usage: python3 make_transformers_parity.py OUT_DIR
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import DeepseekV4Config, DeepseekV4ForCausalLM

import tiny_models as tm

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# Canonical (DeepSeek) suffix -> transformers in-memory module path, per layer.
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "hc_attn_fn": "attn_hc.fn", "hc_attn_base": "attn_hc.base", "hc_attn_scale": "attn_hc.scale",
    "hc_ffn_fn": "ffn_hc.fn", "hc_ffn_base": "ffn_hc.base", "hc_ffn_scale": "ffn_hc.scale",
    "attn.attn_sink": "self_attn.sinks",
    "attn.wq_a.weight": "self_attn.q_a_proj.weight",
    "attn.q_norm.weight": "self_attn.q_a_norm.weight",
    "attn.wq_b.weight": "self_attn.q_b_proj.weight",
    "attn.wkv.weight": "self_attn.kv_proj.weight",
    "attn.kv_norm.weight": "self_attn.kv_norm.weight",
    "attn.wo_a.weight": "self_attn.o_a_proj.weight",
    "attn.wo_b.weight": "self_attn.o_b_proj.weight",
    "attn.compressor.wkv.weight": "self_attn.compressor.kv_proj.weight",
    "attn.compressor.wgate.weight": "self_attn.compressor.gate_proj.weight",
    "attn.compressor.ape": "self_attn.compressor.position_bias",
    "attn.compressor.norm.weight": "self_attn.compressor.kv_norm.weight",
    "attn.indexer.wq_b.weight": "self_attn.compressor.indexer.q_b_proj.weight",
    "attn.indexer.weights_proj.weight": "self_attn.compressor.indexer.scorer.weights_proj.weight",
    "attn.indexer.compressor.wkv.weight": "self_attn.compressor.indexer.kv_proj.weight",
    "attn.indexer.compressor.wgate.weight": "self_attn.compressor.indexer.gate_proj.weight",
    "attn.indexer.compressor.ape": "self_attn.compressor.indexer.position_bias",
    "attn.indexer.compressor.norm.weight": "self_attn.compressor.indexer.kv_norm.weight",
    "ffn.gate.weight": "mlp.gate.weight",
    "ffn.gate.bias": "mlp.gate.e_score_correction_bias",
    "ffn.gate.tid2eid": "mlp.gate.tid2eid",
    "ffn.shared_experts.w1.weight": "mlp.shared_experts.gate_proj.weight",
    "ffn.shared_experts.w3.weight": "mlp.shared_experts.up_proj.weight",
    "ffn.shared_experts.w2.weight": "mlp.shared_experts.down_proj.weight",
}
GLOBAL_NAMES = {
    "embed.weight": "model.embed_tokens.weight", "head.weight": "lm_head.weight", "norm.weight": "model.norm.weight",
    "hc_head_fn": "model.hc_head.hc_fn", "hc_head_base": "model.hc_head.hc_base", "hc_head_scale": "model.hc_head.hc_scale",
}
EXPERT_PROJ = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}


def hf_name(canonical):
    """Canonical name -> transformers name; per-expert names use the ModelOpt/HF per-expert form."""
    if canonical in GLOBAL_NAMES:
        return GLOBAL_NAMES[canonical]
    _, layer, rest = canonical.split(".", 2)
    prefix = f"model.layers.{layer}."
    if rest.startswith("ffn.experts."):
        _, _, e, w, tail = rest.split(".")
        return prefix + f"mlp.experts.{e}.{EXPERT_PROJ[w]}.{tail}"
    return prefix + LAYER_NAMES[rest]


def transformers_state_dict(masters, cfg):
    """fp32 masters -> the in-memory state dict of DeepseekV4ForCausalLM (fused experts)."""
    sd = {}
    E = cfg["n_routed_experts"]
    for name, t in masters.items():
        if ".ffn.experts." in name:
            continue
        sd[hf_name(name)] = t
    for i in range(cfg["num_hidden_layers"]):
        p = f"layers.{i}.ffn.experts."
        w1 = torch.stack([masters[p + f"{e}.w1.weight"] for e in range(E)])
        w3 = torch.stack([masters[p + f"{e}.w3.weight"] for e in range(E)])
        w2 = torch.stack([masters[p + f"{e}.w2.weight"] for e in range(E)])
        sd[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.cat([w1, w3], dim=1)
        sd[f"model.layers.{i}.mlp.experts.down_proj"] = w2
    return sd


def hf_config(cfg):
    layer_type = {0: "sliding_attention", 4: "compressed_sparse_attention"}
    hca = sorted({r for r in cfg["compress_ratios"] if r not in (0, 4)}) or [128]
    rotary = cfg["qk_rope_head_dim"] / cfg["head_dim"]
    return DeepseekV4Config(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
        moe_intermediate_size=cfg["moe_intermediate_size"], num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"], num_key_value_heads=1, head_dim=cfg["head_dim"],
        q_lora_rank=cfg["q_lora_rank"], num_experts_per_tok=cfg["num_experts_per_tok"],
        n_routed_experts=cfg["n_routed_experts"], n_shared_experts=1, scoring_func="sqrtsoftplus",
        norm_topk_prob=True, routed_scaling_factor=cfg["routed_scaling_factor"],
        max_position_embeddings=cfg["max_position_embeddings"], rope_theta=cfg["rope_theta"],
        layer_types=[layer_type.get(r, "heavily_compressed_attention") for r in cfg["compress_ratios"]],
        compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": hca[0]},
        compress_rope_theta=cfg["compress_rope_theta"], hc_mult=cfg["hc_mult"],
        hc_sinkhorn_iters=cfg["hc_sinkhorn_iters"], hc_eps=cfg["hc_eps"],
        mlp_layer_types=["hash_moe" if i < cfg["num_hash_layers"] else "moe" for i in range(cfg["num_hidden_layers"])],
        swiglu_limit=cfg["swiglu_limit"], sliding_window=cfg["sliding_window"], o_groups=cfg["o_groups"],
        o_lora_rank=cfg["o_lora_rank"], index_n_heads=cfg["index_n_heads"], index_head_dim=cfg["index_head_dim"],
        index_topk=cfg["index_topk"], num_nextn_predict_layers=0, rms_norm_eps=cfg["rms_norm_eps"],
        tie_word_embeddings=False, partial_rotary_factor=rotary,
        rope_parameters={
            "main": {"rope_type": "default", "rope_theta": cfg["rope_theta"], "partial_rotary_factor": rotary},
            "compress": {"rope_type": "yarn", "rope_theta": cfg["compress_rope_theta"], "factor": cfg["yarn_factor"],
                         "original_max_position_embeddings": cfg["yarn_original"], "beta_fast": cfg["beta_fast"],
                         "beta_slow": cfg["beta_slow"], "attention_factor": 1.0, "partial_rotary_factor": rotary},
        },
    )


def load_into(model, sd):
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {missing[:20]} unexpected {unexpected[:20]}")
    with torch.no_grad():
        for k, v in sd.items():
            if own[k].shape != v.shape:
                raise RuntimeError(f"{k}: shape {tuple(v.shape)} vs model {tuple(own[k].shape)}")
            own[k].copy_(v.to(own[k].dtype))


@torch.no_grad()
def prefill_logits(model, tokens):
    out = model(input_ids=tokens[None].to(DEVICE), use_cache=False)
    return out.logits[0].float().cpu()


@torch.no_grad()
def decode_logits(model, tokens, split):
    out = model(input_ids=tokens[None, :split].to(DEVICE), use_cache=True)
    rows = [out.logits[0].float().cpu()]
    cache = out.past_key_values
    for p in range(split, tokens.numel()):
        out = model(input_ids=tokens[None, p:p + 1].to(DEVICE), past_key_values=cache, use_cache=True,
                    position_ids=torch.tensor([[p]], device=DEVICE))
        cache = out.past_key_values
        rows.append(out.logits[0].float().cpu())
    return torch.cat(rows, 0)


def nvfp4_checkpoint(masters, cfg):
    """ModelOpt-style NVFP4 export with HF names: every projection NVFP4 except o_a_proj
    (left BF16, as in the field report), the router, the head and the indexer weights_proj.
    Expert w1/w3 keep separate global scales (the mismatch the field report hit)."""
    keep = ("attn.wo_a.", "ffn.gate.", "head.", "attn.indexer.weights_proj.")
    out, dequant = {}, {}
    for name, t in masters.items():
        hf = hf_name(name)
        is_linear = name.endswith(".weight") and t.dim() == 2 and name != "embed.weight"
        if is_linear and not any(k in name for k in keep):
            packed, sf, gs = tm.quantize_nvfp4(t)
            base = hf[: -len(".weight")]
            out[base + ".weight"] = packed
            out[base + ".weight_scale"] = sf
            out[base + ".weight_scale_2"] = gs.reshape(())
            out[base + ".input_scale"] = torch.tensor(8.0 / 2688.0, dtype=torch.float32)
            dequant[name] = tm.dequantize_nvfp4(packed, sf, gs)
        else:
            stored = t if t.dtype == torch.int64 else (
                t.to(torch.float32) if name.endswith(tm.F32_SUFFIXES) else t.to(torch.bfloat16))
            out[hf] = stored
            dequant[name] = t
    return out, dequant


def nvfp4_quant_configs():
    exclude = ["lm_head", "model.layers.*.mlp.gate", "model.layers.*.self_attn.o_a_proj",
               "model.layers.*.self_attn.compressor.indexer.scorer.weights_proj"]
    producer = {"name": "modelopt", "version": "0.0.0-fp4serve-fixture"}
    group = {"num_bits": 4, "type": "float", "group_size": 16, "dynamic": False}
    qc = {"quant_method": "modelopt", "quant_algo": "NVFP4", "producer": producer, "ignore": exclude,
          "config_groups": {"group_0": {"weights": group, "input_activations": group, "targets": ["Linear"]}},
          "kv_cache_scheme": None}
    hf = {"producer": producer, "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": None,
                                                 "group_size": 16, "exclude_modules": exclude}}
    return qc, hf


def run_model(name, out_root, seed):
    cfg = tm.model_config(name)
    masters = tm.make_masters(name, seed)
    tokens = tm.test_tokens(cfg)
    root = os.path.join(out_root, name)
    os.makedirs(root, exist_ok=True)
    config = hf_config(cfg)
    logits = {"tokens": tokens.to(torch.int64)}

    # bf16 checkpoint through save_pretrained, reloaded in fp32 and in bf16.
    model = DeepseekV4ForCausalLM(config)
    load_into(model, transformers_state_dict(masters, cfg))
    bf16_dir = os.path.join(root, "bf16")
    model.to(torch.bfloat16).save_pretrained(bf16_dir)
    del model
    m32 = DeepseekV4ForCausalLM.from_pretrained(bf16_dir, dtype=torch.float32, attn_implementation="eager").to(DEVICE).eval()
    # Loading with dtype=bfloat16 keeps the norms in fp32 (_keep_in_fp32_modules_strict) and then
    # fails on an fp32 x bf16 matmul in transformers 5.17, so the bf16 run casts every parameter.
    m16 = DeepseekV4ForCausalLM.from_pretrained(bf16_dir, dtype=torch.float32, attn_implementation="eager").to(
        device=DEVICE, dtype=torch.bfloat16).eval()
    reference = transformers_state_dict(masters, cfg)
    worst = max((m32.state_dict()[k].float().cpu() - v.float()).abs().max().item() for k, v in reference.items())
    print(f"[{name}] save_pretrained round trip: max |diff| = {worst}")
    assert worst == 0.0, "save_pretrained did not round-trip the bf16 masters"
    debug = {}
    hooks = []
    for i, layer in enumerate(m32.model.layers):
        for key, module in ((f"layers.{i}.attn", layer.self_attn), (f"layers.{i}.ffn", layer.mlp), (f"layers.{i}.out", layer)):
            hooks.append(module.register_forward_hook(
                lambda mod, args, out, key=key: debug.__setitem__(
                    key, (out[0] if isinstance(out, tuple) else out)[0].float().cpu().contiguous())))
    logits["bf16_fp32"] = prefill_logits(m32, tokens)
    for h in hooks:
        h.remove()
    save_file(debug, os.path.join(root, "debug_transformers.safetensors"))
    logits["bf16_bf16"] = prefill_logits(m16, tokens)
    try:
        logits["bf16_fp32_decode"] = decode_logits(m32, tokens, tm.DECODE_SPLIT)
    except Exception as e:  # reported, not fatal: the other fixtures stand on their own
        print(f"[{name}] transformers decode failed: {type(e).__name__}: {e}")

    # DeepSeek-native FP8 + MXFP4.
    native = tm.native_checkpoint(masters)
    tm.write_native(os.path.join(root, "native"), name, native)
    deq = tm.dequantized_native(native)
    sd = transformers_state_dict(deq, cfg)
    load_into(m32, sd)
    load_into(m16, sd)
    logits["native_fp32"] = prefill_logits(m32, tokens)
    logits["native_bf16"] = prefill_logits(m16, tokens)

    # ModelOpt NVFP4.
    nv, nv_deq = nvfp4_checkpoint(masters, cfg)
    nv_dir = os.path.join(root, "nvfp4")
    os.makedirs(nv_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in nv.items()}, os.path.join(nv_dir, "model.safetensors"))
    with open(os.path.join(bf16_dir, "config.json")) as f:
        nv_config = json.load(f)
    qc, hfq = nvfp4_quant_configs()
    nv_config["quantization_config"] = qc
    with open(os.path.join(nv_dir, "config.json"), "w") as f:
        json.dump(nv_config, f, indent=2)
    with open(os.path.join(nv_dir, "hf_quant_config.json"), "w") as f:
        json.dump(hfq, f, indent=2)
    sd = transformers_state_dict(nv_deq, cfg)
    load_into(m32, sd)
    load_into(m16, sd)
    logits["nvfp4_fp32"] = prefill_logits(m32, tokens)
    logits["nvfp4_bf16"] = prefill_logits(m16, tokens)

    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(bf16_dir, extra)):
            os.remove(os.path.join(bf16_dir, extra))
    save_file({k: v.contiguous() for k, v in logits.items()}, os.path.join(root, "logits_transformers.safetensors"))
    summarize(name, logits)


def rel_l2(a, b):
    return ((a - b).norm(dim=-1) / b.norm(dim=-1)).median().item()


def summarize(name, logits):
    ref = logits["bf16_fp32"]
    for k, v in logits.items():
        if k == "tokens":
            continue
        base = {"native_bf16": "native_fp32", "nvfp4_bf16": "nvfp4_fp32"}.get(k, "bf16_fp32")
        r = logits[base]
        top1 = (v.argmax(-1) == r.argmax(-1)).float().mean().item()
        print(f"[{name}] {k:18s} vs {base:12s}: median rel L2 {rel_l2(v, r):.3e} top1 {top1:.3f}")
    print(f"[{name}] logits std {ref.std().item():.3f}; native vs bf16 masters rel L2 "
          f"{rel_l2(logits['native_fp32'], ref):.3e}; nvfp4 vs bf16 masters {rel_l2(logits['nvfp4_fp32'], ref):.3e}")


def main():
    out_root = sys.argv[1]
    if os.path.exists(out_root):
        shutil.rmtree(out_root)
    import transformers
    print("torch", torch.__version__, "transformers", transformers.__version__, "device", DEVICE)
    for i, name in enumerate(tm.MODELS):
        run_model(name, out_root, seed=100 + i)


if __name__ == "__main__":
    main()
