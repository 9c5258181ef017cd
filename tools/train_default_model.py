#!/usr/bin/env python3
"""Trains fp4serve's embedded default model: a small DeepSeek-V4
(transformers' DeepseekV4ForCausalLM) on the Brown corpus, then a short
chat-style fine-tune, on one GPU. docs/DEFAULT_MODEL.md has the whole story;
tools/default_model/ has the parts:

  prepare_inputs.py   (any machine) corpus, dialogues, tokenizer spec
  tokenizer_build.py  byte-level BPE in DeepSeek's format
  model_config.py     the config and the architecture checks
  evaluation.py       perplexity protocol, unigram baseline, generation

Stages: tokenizer (trained here unless --tokenizer-dir gives one), tokenized
streams, model + checks, pre-training (AdamW, bf16 autocast, warmup + cosine,
best validation snapshot kept), chat fine-tune, BF16 evaluation, save and
reload, samples. Everything measured goes to OUT/metrics.json; the model and
tokenizer files to OUT/model/.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent / "default_model"))

import evaluation as ev  # noqa: E402
import model_config as mc  # noqa: E402
import tokenizer_build as tb  # noqa: E402

DEVICE = "cuda"
BOS, EOS = 0, 1


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=Path, required=True, help="folder written by prepare_inputs.py")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tokenizer-dir", type=Path, help="reuse this tokenizer.json instead of training one")
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup-steps", type=int, default=60)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.1, help="on embeddings and on attention / MoE outputs")
    p.add_argument("--pretrain-seconds", type=float, default=240.0)
    p.add_argument("--pretrain-steps", type=int, help="fixed step count (else derived from the time budget)")
    p.add_argument("--max-epochs", type=float, default=12.0, help="cap on passes over the training tokens")
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--finetune-seconds", type=float, default=45.0)
    p.add_argument("--finetune-steps", type=int)
    p.add_argument("--finetune-lr", type=float, default=3e-4)
    p.add_argument("--bias-update-rate", type=float, default=1e-3, help="aux-loss-free expert balancing step")
    p.add_argument("--experts-impl", default="", help="transformers experts implementation (eager, grouped_mm)")
    p.add_argument("--benchmark-experts", action="store_true", help="time eager vs grouped_mm first")
    p.add_argument("--seed", type=int, default=8)
    return p.parse_args()


class Log:
    def __init__(self, path: Path):
        self.file = path.open("w", encoding="utf-8")
        self.start = time.time()

    def __call__(self, message: str) -> None:
        line = f"[{time.time() - self.start:7.1f}s] {message}"
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()


def read_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------- data

def load_tokenizer(args, documents, spec, out_model: Path, log: Log):
    from tokenizers import Tokenizer
    if args.tokenizer_dir:
        tokenizer = Tokenizer.from_file(str(args.tokenizer_dir / "tokenizer.json"))
        tb.check_tokenizer(tokenizer, spec["special_tokens"], args.vocab_size,
                           [d["text"] for d in documents[:20]])
        log(f"tokenizer: reused {args.tokenizer_dir / 'tokenizer.json'}")
    else:
        started = time.time()
        train_texts = [d["text"] for d in documents if d["split"] == "train"]
        tokenizer = tb.build_tokenizer(spec, train_texts, args.vocab_size)
        log(f"tokenizer: trained on {len(train_texts)} documents in {time.time() - started:.1f}s")
    tb.write_tokenizer_files(tokenizer, spec["special_tokens"], out_model)
    return tokenizer


def document_streams(tokenizer, documents) -> dict[str, np.ndarray]:
    """Per split: BOS + document + EOS for every document, concatenated."""
    streams = {}
    for split in ("train", "val", "test"):
        texts = [d["text"] for d in documents if d["split"] == split]
        encoded = tokenizer.encode_batch(texts, add_special_tokens=False)
        parts = [np.array([BOS] + e.ids + [EOS], dtype=np.int64) for e in encoded]
        streams[split] = np.concatenate(parts)
    return streams


def dialogue_streams(tokenizer, dialogues) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per split: packed dialogue ids and a 0/1 mask of the tokens trained on.
    Segments are encoded one by one (their borders are special tokens, so
    this equals encoding the whole string, which is checked on a sample)."""
    result = {}
    for split in ("train", "val", "test"):
        chosen = [d["segments"] for d in dialogues if d["split"] == split]
        flat = [segment for segments in chosen for segment in segments]
        encoded = tokenizer.encode_batch([text for text, _ in flat], add_special_tokens=False)
        for n, segments in enumerate(chosen[:100]):
            whole = tokenizer.encode("".join(t for t, _ in segments), add_special_tokens=False).ids
            parts = tokenizer.encode_batch([t for t, _ in segments], add_special_tokens=False)
            if whole != [i for e in parts for i in e.ids]:
                raise RuntimeError(f"{split} dialogue {n}: segment-wise encoding differs from the whole string")
        ids = np.concatenate([np.array(e.ids, dtype=np.int64) for e in encoded])
        mask = np.concatenate([np.full(len(e.ids), int(trained), dtype=np.int64)
                               for e, (_, trained) in zip(encoded, flat)])
        result[split] = (ids, mask)
    return result


def random_windows(stream: torch.Tensor, rng: np.random.Generator, batch: int, length: int) -> torch.Tensor:
    starts = torch.from_numpy(rng.integers(0, len(stream) - length, size=batch)).to(stream.device)
    return stream[starts[:, None] + torch.arange(length, device=stream.device)]


# ---------------------------------------------------------------- model

def build_model(args, vocab_size: int, log: Log):
    from transformers import DeepseekV4Config, DeepseekV4ForCausalLM
    torch.manual_seed(args.seed)
    config = DeepseekV4Config(**mc.config_kwargs(vocab_size))
    model = DeepseekV4ForCausalLM(config)
    mc.fill_hash_tables(model, config, args.seed)
    model.to(DEVICE)
    if args.experts_impl:
        model.set_experts_implementation(args.experts_impl)
    features = mc.check_architecture(model, config)
    params = mc.count_parameters(model, config)
    log(f"model: {params['total'] / 1e6:.2f}M parameters, {params['active_per_token'] / 1e6:.2f}M active; {features}")
    return model, config, features, params


def add_dropout(model, p: float) -> None:
    """Dropout on the embeddings and on each attention / MoE output before it
    enters the mHC streams (transformers' V4 has attention-probability dropout
    only); forward hooks, so the saved model is untouched."""
    if p <= 0:
        return
    model.model.embed_tokens.register_forward_hook(lambda m, i, o: F.dropout(o, p, m.training))
    for layer in model.model.layers:
        layer.self_attn.register_forward_hook(lambda m, i, o: (F.dropout(o[0], p, m.training),) + tuple(o[1:]))
        layer.mlp.register_forward_hook(lambda m, i, o: F.dropout(o, p, m.training))


class ExpertBalancer:
    """DeepSeek's auxiliary-loss-free balancing: after each step, raise the
    selection bias (e_score_correction_bias) of under-used experts and lower it
    for over-used ones by a fixed rate."""

    def __init__(self, model, rate: float):
        from transformers.models.deepseek_v4.modeling_deepseek_v4 import DeepseekV4TopKRouter
        self.rate = rate
        self.routers = [m for m in model.modules() if isinstance(m, DeepseekV4TopKRouter)]
        self.loads = [torch.zeros(r.num_experts, device=DEVICE) for r in self.routers]
        for router, load in zip(self.routers, self.loads):
            router.register_forward_hook(self._hook(load))

    def _hook(self, load):
        def hook(module, inputs, output):
            if module.training:
                load.add_(torch.bincount(output[2].reshape(-1), minlength=load.numel()).float())
        return hook

    @torch.no_grad()
    def step(self) -> float:
        """Applies the update; returns the worst max/mean load ratio seen."""
        worst = 0.0
        for router, load in zip(self.routers, self.loads):
            if load.sum() > 0:
                mean = load.mean()
                router.e_score_correction_bias += self.rate * torch.sign(mean - load)
                worst = max(worst, float(load.max() / mean))
            load.zero_()
        return worst


def make_optimizer(model, lr: float, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "position_bias" not in name else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=True)


def lr_at(step: int, total: int, peak: float, warmup: int, min_ratio: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def snapshot(model) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- training

def train_phase(name, model, args, log, next_batch, total_steps_fn, peak_lr, warmup, eval_fn, balancer):
    """One training phase. next_batch() -> (input_ids, labels); total_steps_fn
    (seconds per step) -> step count; eval_fn() -> validation loss. Keeps and
    restores the best validation snapshot. Returns the phase's record."""
    optimizer = make_optimizer(model, peak_lr, args.weight_decay)
    total = None
    history, losses, step_times = [], [], []
    best = (float("inf"), -1, None)
    started = time.time()
    step = 0
    while total is None or step < total:
        lr = lr_at(step, total or 10**9, peak_lr, warmup, args.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        t0 = time.time()
        input_ids, labels = next_batch()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=input_ids, labels=labels, use_cache=False).loss
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        imbalance = balancer.step()
        losses.append(float(loss.detach()))
        step_times.append(time.time() - t0)
        step += 1
        if total is None and step == 12:
            total = max(step, total_steps_fn(float(np.median(step_times[2:]))))
            log(f"{name}: {float(np.median(step_times[2:])) * 1000:.0f} ms/step -> {total} steps")
        if step % args.eval_every == 0 or step == total:
            val = eval_fn()
            history.append({"step": step, "train_loss": float(np.mean(losses[-args.eval_every:])),
                            "val_loss": val, "lr": lr, "grad_norm": float(grad_norm),
                            "expert_load_max_over_mean": imbalance, "seconds": time.time() - started})
            log(f"{name} step {step}/{total}: train {history[-1]['train_loss']:.4f} val {val:.4f} "
                f"lr {lr:.2e} |g| {float(grad_norm):.2f} load {imbalance:.2f}")
            if val < best[0]:
                best = (val, step, snapshot(model))
    seconds = time.time() - started
    if best[2] is None:  # a fixed step count that ended between evaluations
        best = (eval_fn(), step, snapshot(model))
    model.load_state_dict(best[2])
    log(f"{name}: {step} steps in {seconds:.0f}s; best val {best[0]:.4f} at step {best[1]} (restored)")
    return {"steps": step, "seconds": seconds, "best_val_loss": best[0], "best_step": best[1],
            "median_step_ms": float(np.median(step_times[2:])) * 1000, "history": history}


def benchmark_experts(model, batch_fn, log) -> dict:
    """Times forward+backward of each experts implementation on one batch (in
    eval mode: no dropout, no balancing counts), checks they agree on the loss,
    and keeps the fastest one that agrees with eager."""
    if not hasattr(model, "set_experts_implementation"):
        log("experts implementations: this transformers has no set_experts_implementation; eager only")
        return {"chosen": "default (no set_experts_implementation)"}
    results = {}
    input_ids, labels = batch_fn()
    model.eval()
    for impl in ("eager", "grouped_mm"):
        try:
            model.set_experts_implementation(impl)
            times = []
            for _ in range(6):
                torch.cuda.synchronize()
                t0 = time.time()
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = model(input_ids=input_ids, labels=labels, use_cache=False).loss
                loss.backward()
                torch.cuda.synchronize()
                times.append(time.time() - t0)
            model.zero_grad(set_to_none=True)
            results[impl] = {"ms": float(np.median(times[2:])) * 1000, "loss": float(loss.detach())}
        except Exception as error:  # an implementation this version lacks: record it
            model.zero_grad(set_to_none=True)
            results[impl] = {"error": f"{type(error).__name__}: {error}"}
    eager_loss = results.get("eager", {}).get("loss")
    usable = {k: v for k, v in results.items()
              if "ms" in v and eager_loss is not None and abs(v["loss"] - eager_loss) < 2e-2}
    chosen = min(usable, key=lambda k: usable[k]["ms"]) if usable else "eager"
    model.set_experts_implementation(chosen)
    results["chosen"] = chosen
    log(f"experts implementations: {results}")
    return results


def chat_loss(model, ids: np.ndarray, mask: np.ndarray, window: int) -> float:
    nll, count = ev.stream_nll(model, ids, window, 64, DEVICE, True, target_mask=mask)
    return nll / count


def decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


def samples(model, tokenizer, chats_test_dialogues: list[dict], device: str) -> dict:
    """Greedy and sampled continuations of "The history of", and chat answers."""
    prompt = tokenizer.encode("The history of", add_special_tokens=False).ids
    result = {"prompt_ids": prompt}
    greedy = ev.generate_greedy(model, prompt, 48, EOS, device)
    result["greedy_no_bos"] = decode(tokenizer, greedy)
    result["greedy_no_bos_ids"] = greedy
    result["greedy_with_bos"] = decode(tokenizer, ev.generate_greedy(model, [BOS] + prompt, 48, EOS, device))
    result["sampled_with_bos_t0.8_p0.95"] = [
        decode(tokenizer, ev.generate_sampled(model, [BOS] + prompt, 48, EOS, device, 0.8, 0.95, seed))
        for seed in (1, 2, 3)]
    result["cached_generate_vs_recompute"] = ev.cached_generate_matches(model, prompt, greedy, device)
    chats = []
    requests = [d["segments"][1][0] for d in chats_test_dialogues[:3]]
    requests.append("<｜User｜>Tell me about the history of the city.<｜Assistant｜></think>")
    for request in requests:
        ids = tokenizer.encode("<｜begin▁of▁sentence｜>" + request, add_special_tokens=False).ids
        chats.append({"prompt": request, "answer": decode(tokenizer, ev.generate_greedy(model, ids, 80, EOS, device))})
    result["chat_greedy"] = chats
    return result


def needs_autocast(model) -> bool:
    """Whether the loaded BF16 model needs bf16 autocast to run: transformers
    keeps norms and mHC parameters in fp32 on load, which some versions can
    only mix with BF16 linears under autocast. Plain dtypes are preferred."""
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([[BOS, 100, 200, 300, 400]], device=DEVICE), use_cache=False)
        return False
    except RuntimeError:
        return True


def safetensors_dtypes(folder: Path) -> dict:
    counts: dict[str, int] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with file.open("rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        for name, info in header.items():
            if name != "__metadata__":
                counts[info["dtype"]] = counts.get(info["dtype"], 0) + 1
    return counts


# ---------------------------------------------------------------- main

def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    out_model = args.out / "model"
    log = Log(args.out / "train_log.txt")
    import tokenizers
    import transformers
    from transformers import DeepseekV4ForCausalLM, GenerationConfig
    metrics: dict = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    metrics["environment"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                              "tokenizers": tokenizers.__version__, "python": platform.python_version(),
                              "gpu": torch.cuda.get_device_name(0)}
    log(f"environment: {metrics['environment']}")
    rng = np.random.default_rng(args.seed)

    documents = read_jsonl(args.inputs / "corpus.jsonl.gz")
    dialogues = read_jsonl(args.inputs / "dialogues.jsonl.gz")
    spec = json.loads((args.inputs / "tokenizer_spec.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer(args, documents, spec, out_model, log)
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    streams = document_streams(tokenizer, documents)
    chats = dialogue_streams(tokenizer, dialogues)
    metrics["data"] = {
        split: {"documents": sum(d["split"] == split for d in documents),
                "words": sum(len(d["text"].split()) for d in documents if d["split"] == split),
                "tokens": int(len(streams[split])),
                "dialogues": sum(d["split"] == split for d in dialogues),
                "dialogue_tokens": int(len(chats[split][0])) if split in chats else 0,
                "dialogue_trained_tokens": int(chats[split][1].sum()) if split in chats else 0}
        for split in ("train", "val", "test")}
    log(f"data: {metrics['data']}")

    model, config, features, params = build_model(args, vocab, log)
    metrics["model"] = {"features": features, "parameters": params}
    metrics["causality_max_abs_logit_change"] = ev.causality_check(model, vocab, DEVICE)
    log(f"causality check: max |logit change| before the edit = {metrics['causality_max_abs_logit_change']:.2e}")
    if metrics["causality_max_abs_logit_change"] > 1e-3:
        raise RuntimeError("future tokens change past logits: the mask or a compressor leaks")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    add_dropout(model, args.dropout)
    balancer = ExpertBalancer(model, args.bias_update_rate)

    train_stream = torch.from_numpy(streams["train"]).to(DEVICE)
    L = args.seq_len

    def lm_batch():
        x = random_windows(train_stream, rng, args.batch, L)
        return x, x

    if args.benchmark_experts:
        metrics["experts_benchmark"] = benchmark_experts(model, lm_batch, log)
    metrics["experts_implementation"] = str(model.config._experts_implementation) \
        if hasattr(model.config, "_experts_implementation") else args.experts_impl

    tokens_per_step = args.batch * L
    steps_per_epoch = len(streams["train"]) / tokens_per_step

    def pretrain_total(seconds_per_step: float) -> int:
        if args.pretrain_steps:
            return args.pretrain_steps
        return max(20, min(int(0.95 * args.pretrain_seconds / seconds_per_step), int(args.max_epochs * steps_per_epoch)))

    def val_lm_loss() -> float:
        nll, count = ev.stream_nll(model, streams["val"], L, 64, DEVICE, True)
        return nll / count

    pre = train_phase("pretrain", model, args, log, lm_batch, pretrain_total, args.lr, args.warmup_steps,
                      val_lm_loss, balancer)
    pre["tokens_seen"] = pre["steps"] * tokens_per_step
    pre["epochs"] = pre["tokens_seen"] / len(streams["train"])
    pre["test"] = ev.loss_summary(*ev.stream_nll(model, streams["test"], L, 64, DEVICE, True))
    pre["chat_test_loss"] = chat_loss(model, *chats["test"], L)
    pre["greedy_no_bos"] = decode(tokenizer, ev.generate_greedy(
        model, tokenizer.encode("The history of", add_special_tokens=False).ids, 48, EOS, DEVICE))
    metrics["pretrain"] = pre
    log(f"after pre-training: test {pre['test']}, chat test loss {pre['chat_test_loss']:.4f}; "
        f"greedy: {pre['greedy_no_bos']!r}")

    chat_ids = torch.from_numpy(chats["train"][0]).to(DEVICE)
    chat_mask = torch.from_numpy(chats["train"][1]).to(DEVICE)

    def finetune_batch():
        half = args.batch // 2
        starts = torch.from_numpy(rng.integers(0, len(chat_ids) - L, size=half)).to(DEVICE)
        index = starts[:, None] + torch.arange(L, device=DEVICE)
        x_chat, m_chat = chat_ids[index], chat_mask[index]
        x_lm = random_windows(train_stream, rng, args.batch - half, L)
        return torch.cat([x_chat, x_lm]), torch.cat([torch.where(m_chat.bool(), x_chat, -100), x_lm])

    def finetune_total(seconds_per_step: float) -> int:
        return args.finetune_steps or max(20, int(0.95 * args.finetune_seconds / seconds_per_step))

    ft = train_phase("finetune", model, args, log, finetune_batch, finetune_total, args.finetune_lr, 10,
                     lambda: chat_loss(model, *chats["val"], L), balancer)
    ft["tokens_seen"] = ft["steps"] * tokens_per_step
    ft["val_lm_loss"] = val_lm_loss()
    metrics["finetune"] = ft

    # The shipped form: every tensor BF16, as transformers' save_pretrained writes it.
    hash_tables = {i: layer.mlp.gate.tid2eid.detach().cpu().clone() for i, layer in enumerate(model.model.layers)
                   if config.mlp_layer_types[i] == "hash_moe"}
    model.to(torch.bfloat16)
    # Chat mode by default (the fine-tune taught plain answers); servers read this as their
    # default chat_template_kwargs (fp4serve: src/server/generation_defaults.h).
    model.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS,
                                               do_sample=True, temperature=0.8, top_p=0.95,
                                               default_chat_template_kwargs={"thinking": False})
    model.save_pretrained(out_model, max_shard_size="200MB")
    del model
    torch.cuda.empty_cache()
    model = DeepseekV4ForCausalLM.from_pretrained(out_model, dtype=torch.bfloat16).to(DEVICE)
    for i, table in hash_tables.items():
        if not torch.equal(model.model.layers[i].mlp.gate.tid2eid.cpu(), table):
            raise RuntimeError(f"layer {i}: tid2eid did not survive save/reload")
    metrics["saved"] = {"files": sorted(p.name for p in out_model.iterdir()),
                        "tensor_dtypes": safetensors_dtypes(out_model),
                        "bytes": sum(p.stat().st_size for p in out_model.iterdir())}
    metrics["config_json"] = json.loads((out_model / "config.json").read_text())
    metrics["reloaded_dtypes"] = {
        "rotary_inv_freq": str(model.model.rotary_emb.main_inv_freq.dtype),
        "parameters": sorted({str(p.dtype) for p in model.parameters()}),
        "fp32_parameters": sorted(n for n, p in model.named_parameters() if p.dtype == torch.float32)[:12]}

    # Held-out evaluation of the reloaded BF16 model, and the unigram baseline on the same tokens.
    autocast = needs_autocast(model)
    final = {"autocast_bf16": autocast}
    train_sample = streams["train"][: len(streams["test"])]
    for split, stream in (("train_sample", train_sample), ("val", streams["val"]), ("test", streams["test"])):
        final[split] = ev.loss_summary(*ev.stream_nll(model, stream, L, 32, DEVICE, autocast))
    final["unigram_test"] = ev.loss_summary(*ev.unigram_nll(streams["train"], ev.predicted_targets(streams["test"], L), vocab))
    final["chat_test_loss"] = ev.stream_nll(model, *chats["test"][:1], L, 32, DEVICE, autocast,
                                            target_mask=chats["test"][1])
    final["chat_test_loss"] = final["chat_test_loss"][0] / final["chat_test_loss"][1]
    metrics["final_bf16"] = final
    log(f"final BF16 (reloaded): {final}")

    extra = args.out / "heldout"
    extra.mkdir(exist_ok=True)
    streams["test"].astype("<u2").tofile(extra / "heldout_tokens.u16")
    metrics["heldout_file"] = {"name": "heldout_tokens.u16", "dtype": "uint16 little-endian",
                               "tokens": int(len(streams["test"])), "window": L,
                               "protocol": ev.__doc__.strip(), "bf16_transformers": final["test"],
                               "unigram": final["unigram_test"]}
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        metrics["samples"] = samples(model, tokenizer, [d for d in dialogues if d["split"] == "test"], DEVICE)
    for key in ("greedy_no_bos", "greedy_with_bos"):
        log(f"{key}: The history of{metrics['samples'][key]!r}")
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False), encoding="utf-8")
    log("done")


if __name__ == "__main__":
    main()
