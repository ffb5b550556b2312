"""Scores beyond exact match (classification P/R/F1, BLEU, ROUGE-L, distinct-n, perplexity, choice
log-probabilities) and ``METRICS``, the metrics a suite names, by name.

Chinese needs its own tokenisation: BLEU uses sacrebleu's ``zh`` tokenizer, ROUGE-L segments words with
jieba. A text counts as Chinese when most of its letters are CJK ideographs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from imts.core.errors import InputError
from imts.core.text import is_chinese

_WORD = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Words for ROUGE and distinct-n: jieba segments for Chinese, lower-cased word characters otherwise."""
    if is_chinese(text):
        import jieba

        jieba.setLogLevel(60)  # its "Building prefix dict" chatter goes to stderr otherwise
        return [t for t in jieba.lcut(text) if t.strip() and _WORD.search(t)]
    return _WORD.findall(text.lower())


def accuracy(correct: Sequence[bool]) -> float:
    return sum(correct) / len(correct) if correct else 0.0


def precision_recall_f1(
    predicted: Sequence[str], expected: Sequence[str], positive: str | None = None
) -> dict[str, float]:
    """Classification scores. With ``positive``: binary scores of that label; otherwise macro-averaged
    over the expected labels (a label never predicted has precision 0)."""
    if len(predicted) != len(expected):
        raise ValueError("predicted and expected differ in length")
    labels = [positive] if positive is not None else sorted(set(expected))
    per = []
    for label in labels:
        tp = sum(p == label and e == label for p, e in zip(predicted, expected, strict=True))
        fp = sum(p == label and e != label for p, e in zip(predicted, expected, strict=True))
        fn = sum(p != label and e == label for p, e in zip(predicted, expected, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per.append((precision, recall, f1))
    n = len(per) or 1
    return {
        "precision": sum(p for p, _, _ in per) / n,
        "recall": sum(r for _, r, _ in per) / n,
        "f1": sum(f for _, _, f in per) / n,
    }


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) with sacrebleu; the ``zh`` tokenizer when the references are mostly Chinese."""
    import sacrebleu

    chinese = sum(is_chinese(r) for r in references) * 2 >= len(references)
    return float(
        sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize="zh" if chinese else "13a").score
    )


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F-measure (0-1) on words (jieba-segmented for Chinese)."""
    hyp, ref = tokens(hypothesis), tokens(reference)
    if not hyp or not ref:
        return float(hyp == ref)
    lcs = _lcs(hyp, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams across the texts (diversity; 1.0 = no n-gram repeats)."""
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        words = tokens(text)
        grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def answer_nlls(
    tokenizer: Any, model: Any, items: Sequence[tuple[list[dict[str, str]], str]], batch_size: int = 16
) -> list[tuple[float, int]]:
    """Summed negative log-likelihood and token count of each answer text (plus EOS) after its chat
    prompt, in input order.

    Batched: rows of similar length together, left-padded so every answer ends at the right edge, and
    the vocabulary projection only over the answers' positions (``logits_to_keep``).
    """
    import torch

    from imts.inference.generate import pad_rows, render_prompt

    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    encoded = [
        (render_prompt(tokenizer, prompt), [*tokenizer(text, add_special_tokens=False)["input_ids"], *eos])
        for prompt, text in items
    ]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(encoded)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad_rows([encoded[i][0] + encoded[i][1] for i in idx], pad)
            keep = max(len(encoded[i][1]) for i in idx) + 1
            pos = (mask.cumsum(1) - 1).clamp(min=0)
            logits = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device),
                logits_to_keep=keep,
            ).logits.float()  # fmt: skip
            logp = torch.log_softmax(logits, dim=-1)
            for r, i in enumerate(idx):
                answer = encoded[i][1]
                # kept position k predicts the token at width - keep + k + 1
                span = logp[r, keep - 1 - len(answer) : keep - 1]
                target = torch.tensor(answer, device=span.device)[:, None]
                out[i] = (-float(span.gather(1, target).sum()), len(answer))
    return out


def choice_logprobs(
    tokenizer: Any,
    model: Any,
    items: Sequence[tuple[list[dict[str, str]], Sequence[str]]],
    batch_size: int = 16,
) -> list[list[float]]:
    """Mean log-probability per token of each choice (plus EOS) as the answer to its chat prompt, for
    every (prompt, choices) item in input order. Per token, not summed: a sum prefers the shorter answer
    whatever it says.

    Each prompt passes the model once: its choices go on from its KV cache together, so an item with k
    choices costs one prompt and k short continuations instead of k whole sequences (on a CPU a model
    pass costs in proportion to its tokens, and the prompt is most of them). Models whose cache cannot
    be shared this way are scored choice by choice (``answer_nlls``).
    """
    import torch
    from transformers.cache_utils import DynamicCache, DynamicLayer

    from imts.inference.generate import pad_rows, render_prompt

    if not all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers):
        pairs = [(prompt, c) for prompt, cs in items for c in cs]
        scored = iter(answer_nlls(tokenizer, model, pairs, batch_size))
        return [[-nll / n for nll, n in (next(scored) for _ in cs)] for _, cs in items]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    prompts = [render_prompt(tokenizer, prompt) for prompt, _ in items]
    answers = [[[*tokenizer(c, add_special_tokens=False)["input_ids"], *eos] for c in cs] for _, cs in items]
    order = sorted(range(len(items)), key=lambda i: len(prompts[i]))
    out: list[list[float]] = [[] for _ in items]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad_rows([prompts[i] for i in idx], pad)
            ids, mask = ids.to(device), mask.to(device)
            pos = (mask.cumsum(1) - 1).clamp(min=0)
            first = model(
                input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1
            )
            cache = first.cache
            # one row per (item, choice), each going on from its prompt's cache row
            rows = [(r, a) for r, i in enumerate(idx) for a in answers[i]]
            src = torch.tensor([r for r, _ in rows], device=device)
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys[src], layer.values[src]
            # right-padded: a row's padding comes after its answer
            cids, cmask = pad_rows([a for _, a in rows], pad, left=False)
            cids, cmask = cids.to(device), cmask.to(device)
            cpos = pos[src, -1:] + 1 + torch.arange(cids.shape[1], device=device)
            logits = model(
                input_ids=cids, attention_mask=torch.cat([mask[src], cmask], dim=1), position_ids=cpos,
                cache=cache, use_cache=True,
            ).logits  # fmt: skip
            # the prompt's last position predicts each answer's first token, answer position j its j+1-th
            logp = torch.cat([first.logits[src, -1:], logits[:, :-1]], dim=1).float().log_softmax(-1)
            picked = logp.gather(2, cids[:, :, None])[:, :, 0] * cmask
            means = (picked.sum(1) / cmask.sum(1)).tolist()
            k = 0
            for i in idx:
                out[i] = means[k : k + len(items[i][1])]
                k += len(items[i][1])
    return out


def perplexity(
    tokenizer: Any, model: Any, prompts: Sequence[list[dict[str, str]]], references: Sequence[str]
) -> float:
    """exp(mean negative log-likelihood per token) of each reference answer given its chat prompt."""
    scored = answer_nlls(tokenizer, model, list(zip(prompts, references, strict=True)))
    return math.exp(sum(nll for nll, _ in scored) / max(sum(n for _, n in scored), 1))


# --- the metrics a suite names ----------------------------------------------------------------------


@dataclass(frozen=True)
class MetricInput:
    """What a metric may read, item by item."""

    predictions: Sequence[str]  # the model's texts
    references: Sequence[str]  # the full reference texts
    answers: Sequence[str]  # the reference answers exact match compares against
    extracted: Sequence[str | None]  # the answers read from the predictions
    correct: Sequence[bool]
    prompts: Sequence[list[dict[str, str]]]
    model_loader: Callable[[], tuple[Any, Any]] | None = None  # (tokenizer, model), loaded on first call


@dataclass(frozen=True)
class MetricResult:
    summary: dict[str, float]
    per_item: list[float] | None = None  # kept per item (as ``EvalItemScore`` rows) where given


@dataclass(frozen=True)
class Metric:
    """A metric by name; ``needs`` says what it reads: ``answers`` (the items' outcomes), ``texts``
    (predictions against references) or ``model`` (the model itself; skipped where none is loaded)."""

    name: str
    needs: Literal["answers", "texts", "model"]
    compute: Callable[[MetricInput], MetricResult]


def _exact_match(d: MetricInput) -> MetricResult:
    return MetricResult({"exact_match": accuracy(d.correct)})


def _answer_f1(d: MetricInput) -> MetricResult:  # the extracted answer as a label against the reference
    prf = precision_recall_f1([e or "" for e in d.extracted], list(d.answers))
    return MetricResult({f"answer_{k}": v for k, v in prf.items()})


def _rouge_l(d: MetricInput) -> MetricResult:
    values = [rouge_l(t, ref) for t, ref in zip(d.predictions, d.references, strict=True)]
    return MetricResult({"rouge_l": sum(values) / len(values) if values else 0.0}, values)


def _perplexity(d: MetricInput) -> MetricResult:
    assert d.model_loader is not None
    tokenizer, model = d.model_loader()
    return MetricResult({"perplexity": perplexity(tokenizer, model, d.prompts, d.references)})


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("exact_match", "answers", _exact_match),
        Metric("f1", "answers", _answer_f1),
        Metric("bleu", "texts", lambda d: MetricResult({"bleu": bleu(d.predictions, d.references)})),
        Metric("rouge_l", "texts", _rouge_l),
        Metric("distinct_2", "texts", lambda d: MetricResult({"distinct_2": distinct_n(d.predictions, 2)})),
        Metric("perplexity", "model", _perplexity),
    )
}


def metric(name: str) -> Metric:
    """The metric called ``name``; an :class:`InputError` naming the known ones otherwise."""
    if name not in METRICS:
        raise InputError(f"unknown metric '{name}' (choose from {', '.join(METRICS)})", field="metrics")
    return METRICS[name]
