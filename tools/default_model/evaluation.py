"""Perplexity, the unigram baseline and text generation for the default model.

Perplexity protocol (the one fp4serve's engine must repeat on
heldout_tokens.u16): the token stream is cut into consecutive non-overlapping
windows of `window` tokens (the last one shorter); each window is an
independent sequence starting at position 0; every token of a window except
its first is predicted from the ones before it. Perplexity = exp(mean NLL)
over all predicted tokens.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def windows(stream: np.ndarray, window: int) -> list[np.ndarray]:
    pieces = [stream[i:i + window] for i in range(0, len(stream), window)]
    return [p for p in pieces if len(p) >= 2]


def predicted_targets(stream: np.ndarray, window: int) -> np.ndarray:
    """The tokens the protocol predicts (each window without its first token)."""
    return np.concatenate([w[1:] for w in windows(stream, window)])


@torch.no_grad()
def stream_nll(model, stream: np.ndarray, window: int, batch: int, device: str, autocast_bf16: bool,
               target_mask: np.ndarray | None = None) -> tuple[float, int]:
    """Sum of NLL (nats, float64) over the protocol's predicted tokens, and their
    count; with target_mask (aligned with stream), only tokens whose mask is 1."""
    model.eval()
    total, count = 0.0, 0
    mask_stream = np.ones_like(stream) if target_mask is None else target_mask
    # Windows of equal length go together; only the last one can be shorter.
    groups: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for piece, mask in zip(windows(stream, window), windows(mask_stream, window)):
        groups.setdefault(len(piece), []).append((piece, mask))
    for group in groups.values():
        for start in range(0, len(group), batch):
            chunk = group[start:start + batch]
            ids = torch.from_numpy(np.stack([p for p, _ in chunk]).astype(np.int64)).to(device)
            mask = torch.from_numpy(np.stack([m for _, m in chunk])[:, 1:].astype(np.float64)).to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast_bf16):
                logits = model(input_ids=ids, use_cache=False).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
            total += float((nll.double() * mask).sum())
            count += int(mask.sum())
    return total, count


def unigram_nll(train_stream: np.ndarray, eval_targets: np.ndarray, vocab_size: int) -> tuple[float, int]:
    """Add-one smoothed unigram model estimated on the training stream,
    scored on the same predicted tokens as the model."""
    counts = np.bincount(train_stream, minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[eval_targets].sum()), int(len(eval_targets))


def loss_summary(nll_sum: float, count: int) -> dict:
    loss = nll_sum / count
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": count}


@torch.no_grad()
def generate_greedy(model, prompt_ids: list[int], max_new_tokens: int, eos_id: int, device: str) -> list[int]:
    """Greedy decoding by full recomputation (no KV cache): independent of
    transformers' cache code, the same computation as one prefill per step."""
    model.eval()
    ids = list(prompt_ids)
    for _ in range(max_new_tokens):
        logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[0, -1]
        token = int(logits.float().argmax())
        ids.append(token)
        if token == eos_id:
            break
    return ids[len(prompt_ids):]


@torch.no_grad()
def generate_sampled(model, prompt_ids: list[int], max_new_tokens: int, eos_id: int, device: str,
                     temperature: float, top_p: float, seed: int) -> list[int]:
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = list(prompt_ids)
    for _ in range(max_new_tokens):
        logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[0, -1].float()
        probs = torch.softmax(logits / temperature, dim=-1)
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(0) - sorted_probs < top_p
        sorted_probs = sorted_probs * keep
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        token = int(order[choice])
        ids.append(token)
        if token == eos_id:
            break
    return ids[len(prompt_ids):]


@torch.no_grad()
def cached_generate_matches(model, prompt_ids: list[int], reference: list[int], device: str) -> dict:
    """Whether transformers' generate() with its KV/compressor cache gives the
    same greedy tokens as full recomputation (a consistency fact for the engine)."""
    try:
        out = model.generate(torch.tensor([prompt_ids], device=device), max_new_tokens=len(reference),
                             do_sample=False, use_cache=True)
        cached = out[0, len(prompt_ids):].tolist()
        agree = next((i for i, (a, b) in enumerate(zip(cached, reference)) if a != b), min(len(cached), len(reference)))
        return {"identical": cached == reference, "tokens_agreeing_from_start": agree, "compared": len(reference)}
    except Exception as error:  # report, never hide: the doc lists it
        return {"error": f"{type(error).__name__}: {error}"}


@torch.no_grad()
def causality_check(model, vocab_size: int, device: str, length: int = 300, cut: int = 200) -> float:
    """Largest change of the logits at positions < cut when the tokens from cut
    on are replaced: must be 0 (no attention, compressor or indexer path may
    see the future)."""
    model.eval()
    generator = torch.Generator().manual_seed(1)
    a = torch.randint(16, vocab_size, (1, length), generator=generator)
    b = a.clone()
    b[0, cut:] = torch.randint(16, vocab_size, (length - cut,), generator=generator)
    la = model(input_ids=a.to(device), use_cache=False).logits[0, :cut].float()
    lb = model(input_ids=b.to(device), use_cache=False).logits[0, :cut].float()
    return float((la - lb).abs().max())
