"""Logits of DeepSeek's official inference/model.py on the native FP8 + MXFP4 tiny
checkpoints written by make_transformers_parity.py (GPU machine).

DeepSeek's model.py is not ours and is not in the repository: pass the folder that
holds it. Its TileLang kernels are replaced by deepseek_kernel.py (ours).

  <root>/<model>/logits_deepseek.safetensors
      tokens [S] I64
      prefill  [S, V] F32   one prefill of all S tokens, logits of every position
      decode   [S, V] F32   prefill of DECODE_SPLIT tokens (every position), then one token at a time
  <root>/<model>/debug_deepseek.safetensors  per-layer outputs of the prefill (debugging aid)
Usage: python3 run_deepseek_reference.py MODEL_PY_DIR FIXTURE_ROOT
"""
import json
import os
import sys
import types

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import deepseek_kernel
import tiny_models as tm

torch.backends.cuda.matmul.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


def import_reference(model_dir):
    sys.modules["kernel"] = deepseek_kernel
    fht = types.ModuleType("fast_hadamard_transform")
    fht.hadamard_transform = deepseek_kernel.hadamard_transform
    sys.modules["fast_hadamard_transform"] = fht
    sys.path.insert(0, model_dir)
    import model as reference  # noqa: E402  (DeepSeek's inference/model.py)
    return reference


def model_args(reference, config):
    rs = config["rope_scaling"]
    return reference.ModelArgs(
        max_batch_size=2, max_seq_len=64, dtype="fp8", scale_fmt="ue8m0", expert_dtype="fp4", scale_dtype="fp8",
        vocab_size=config["vocab_size"], dim=config["hidden_size"], moe_inter_dim=config["moe_intermediate_size"],
        n_layers=config["num_hidden_layers"], n_hash_layers=config["num_hash_layers"], n_mtp_layers=0,
        n_heads=config["num_attention_heads"], n_routed_experts=config["n_routed_experts"],
        n_shared_experts=config["n_shared_experts"], n_activated_experts=config["num_experts_per_tok"],
        score_func=config["scoring_func"], route_scale=config["routed_scaling_factor"],
        swiglu_limit=config["swiglu_limit"], q_lora_rank=config["q_lora_rank"], head_dim=config["head_dim"],
        rope_head_dim=config["qk_rope_head_dim"], norm_eps=config["rms_norm_eps"], o_groups=config["o_groups"],
        o_lora_rank=config["o_lora_rank"], window_size=config["sliding_window"],
        compress_ratios=tuple(config["compress_ratios"]), compress_rope_theta=config["compress_rope_theta"],
        original_seq_len=rs["original_max_position_embeddings"], rope_theta=config["rope_theta"],
        rope_factor=rs["factor"], beta_fast=rs["beta_fast"], beta_slow=rs["beta_slow"],
        index_n_heads=config["index_n_heads"], index_head_dim=config["index_head_dim"],
        index_topk=config["index_topk"], hc_mult=config["hc_mult"], hc_sinkhorn_iters=config["hc_sinkhorn_iters"],
        hc_eps=config["hc_eps"])


def build(reference, args, native):
    """A fresh Transformer (the reference never resets its caches) with the checkpoint loaded
    the way DeepSeek's convert.py + load_model do: wo_a dequantized to bf16, raw bytes for
    FP8 / E8M0 / FP4, bf16 norms and compressor weights widened to fp32, tid2eid to int32."""
    model = reference.Transformer(args)
    used = set()
    with torch.no_grad():
        for name, p in model.state_dict(keep_vars=True).items():
            if name.endswith("attn.wo_a.weight"):
                base = name[: -len(".weight")]
                src = tm.dequantize_fp8_block(native[name], native[base + ".scale"].view(torch.uint8))
                used.update({name, base + ".scale"})
                p.data.copy_(src.to(p.dtype))
                continue
            src = native[name]
            used.add(name)
            if p.dtype in (torch.float8_e4m3fn, torch.float8_e8m0fnu, torch.float4_e2m1fn_x2):
                assert src.element_size() == 1 and src.numel() == p.numel(), name
                p.data.view(torch.uint8).copy_(src.contiguous().view(torch.uint8).view(p.shape))
            else:
                p.data.copy_(src.to(p.dtype))
    unused = sorted(set(native) - used)
    assert not unused, f"checkpoint tensors not consumed: {unused}"
    model.head.get_logits = lambda x: F.linear(x.float(), model.head.weight)  # every position
    return model.eval()


def record_blocks(model):
    """Per-layer outputs of the prefill (attention, MoE, block), for debugging; not a fixture."""
    debug = {}

    def keep(key):
        return lambda module, args, out: debug.__setitem__(key, out[0].float().cpu().contiguous())

    for i, layer in enumerate(model.layers):
        layer.attn.register_forward_hook(keep(f"layers.{i}.attn"))
        layer.ffn.register_forward_hook(keep(f"layers.{i}.ffn"))
        layer.register_forward_hook(keep(f"layers.{i}.out"))
    return debug


def main():
    model_dir, root = sys.argv[1], sys.argv[2]
    reference = import_reference(model_dir)
    torch.set_default_dtype(torch.bfloat16)
    torch.set_default_device("cuda")
    for name in tm.MODELS:
        mdir = os.path.join(root, name)
        with open(os.path.join(mdir, "native", "config.json")) as f:
            config = json.load(f)
        native = {k: v.cuda() for k, v in load_file(os.path.join(mdir, "native", "model.safetensors")).items()}
        tokens = load_file(os.path.join(mdir, "logits_transformers.safetensors"))["tokens"].cuda()
        args = model_args(reference, config)
        with torch.inference_mode():
            model = build(reference, args, native)
            debug = record_blocks(model)
            prefill = model(tokens[None], 0)[0].float().cpu()
            save_file(debug, os.path.join(mdir, "debug_deepseek.safetensors"))
            model = build(reference, args, native)
            split = tm.DECODE_SPLIT
            rows = [model(tokens[None, :split], 0)[0].float().cpu()]
            for p in range(split, tokens.numel()):
                rows.append(model(tokens[None, p:p + 1], p)[0].float().cpu())
            decode = torch.cat(rows, 0)
        out = {"tokens": tokens.cpu(), "prefill": prefill.contiguous(), "decode": decode.contiguous()}
        save_file(out, os.path.join(mdir, "logits_deepseek.safetensors"))
        tf = load_file(os.path.join(mdir, "logits_transformers.safetensors"))
        for key, ref in (("prefill", tf["native_fp32"]), ("decode", prefill)):
            rel = ((out[key] - ref).norm(dim=-1) / ref.norm(dim=-1))
            top1 = (out[key].argmax(-1) == ref.argmax(-1)).float().mean().item()
            print(f"[{name}] deepseek {key:8s} vs {'transformers native fp32' if key == 'prefill' else 'deepseek prefill'}: "
                  f"median rel L2 {rel.median().item():.3e} max {rel.max().item():.3e} top1 {top1:.3f}")


if __name__ == "__main__":
    main()
