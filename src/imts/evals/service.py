"""Evaluation runs: put a dataset split's examples to a model, score the answers, store per-item results."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqlalchemy import select

from imts.core.errors import NotFoundError
from imts.core.progress import NullProgress, Progress
from imts.data.versions import load_rows
from imts.evals import cache
from imts.evals import textmetrics as tm
from imts.evals.refs import eval_data
from imts.evals.report import EvalResult, ItemOutcome, accuracy_by_category
from imts.evals.scoring import score_task
from imts.evals.suite import SuiteSpec
from imts.evals.tasks import Example, TaskOptions, examples, task_kind
from imts.inference import generate as gen
from imts.registry.models import ResolvedModel
from imts.registry.models import resolve as resolve_model
from imts.store import runs
from imts.store.context import Context
from imts.store.models import EvalItem, EvalItemScore


@dataclass(frozen=True)
class EvalSettings:
    max_new_tokens: int | None = None  # None: derived from the reference answers' lengths
    batch_size: int = 32
    max_items: int | None = None
    metrics: tuple[str, ...] = ("exact_match",)
    judges: tuple[str, ...] = ()
    system_prompt: str | None = None
    sampling: gen.Sampling = field(default_factory=gen.Sampling)
    cache: bool = True
    task: str | None = None  # None: the dataset's format names the task
    text_threshold: float = 0.5
    tools: tuple[str, ...] = ()  # decoding tools (``imts.inference.tools``), e.g. ("calculator",)

    @classmethod
    def from_suite(cls, suite: SuiteSpec) -> EvalSettings:
        return cls(
            suite.max_new_tokens,
            suite.batch_size,
            suite.max_items,
            tuple(suite.metrics),
            tuple(suite.judges),
            suite.system_prompt,
            suite.sampling.to_sampling(),
            suite.cache,
            suite.task,
            suite.text_threshold,
            tuple(suite.tools),
        )


def spread(rows: list[Any], n: int | None) -> list[Any]:
    """At most ``n`` rows spread evenly over ``rows`` (all of them when ``n`` is None): a set stored by
    language or category keeps its mix, which its first ``n`` rows would not."""
    if n is None or len(rows) <= n:
        return rows
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


def generation_budget(tokenizer: Any, references: list[str], cap: int = 512) -> int:
    """Room for the longest reference answer plus a quarter, so a correct answer always fits.

    A batch decodes until its longest row stops; a fixed generous budget lets one rambling answer
    cost every other row in the batch, which on a CPU is most of an evaluation's time.
    """
    longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
    return max(16, min(cap, int(longest * 1.25) + 8))


def evaluate(
    ctx: Context,
    model_ref: str,
    data_ref: str,
    settings: EvalSettings | None = None,
    progress: Progress | None = None,
    model: ResolvedModel | None = None,
) -> str:
    """Evaluate a model on a dataset (split); returns the eval run id.

    Args:
        model_ref: any model reference (see ``imts.registry.models.resolve``).
        data_ref: dataset reference; without a split, the ``test`` split (see ``eval_data``).
    """
    settings = settings or EvalSettings()
    progress = progress or NullProgress()
    ref = eval_data(ctx, data_ref)
    kind = task_kind(ref.version.format, settings.task, ref.version.ref)
    rows = spread(load_rows(ctx, ref), settings.max_items)
    if not rows:
        raise NotFoundError(f"{ref} has no rows to evaluate")
    resolved = model or resolve_model(ctx, model_ref)
    run = runs.begin(
        ctx,
        "eval",
        {"model": model_ref, "data": str(ref), **asdict(settings)},
        base_model_id=resolved.base_model_id,
        model_version_id=resolved.model_version_id,
        dataset_version_id=ref.version.id,
        split=ref.split,
    )
    run_id = run.id
    try:
        from transformers import AutoTokenizer

        task = kind.make(rows, TaskOptions(settings.text_threshold))
        items = examples(task)
        prompts = [_prompt(e.prompt, settings.system_prompt) for e in items]
        tokenizer = AutoTokenizer.from_pretrained(resolved.adapter or resolved.path)
        budget = settings.max_new_tokens or generation_budget(tokenizer, [e.reference_text for e in items])
        loaded: list[tuple[Any, Any]] = []

        def model_loader() -> tuple[Any, Any]:
            if not loaded:  # loaded once, and only when something is not in the cache
                loaded.append(gen.load(resolved.path, resolved.adapter))
            return loaded[0]

        if task.kind == "choose":
            texts, speed, hits = _choose_cached(
                ctx, resolved, prompts, items, settings, progress, model_loader, use_cache=settings.cache
            )
        else:
            texts, speed, hits = _generate_cached(
                ctx, resolved, prompts, budget, settings, progress, model_loader, use_cache=settings.cache
            )
        scored = score_task(task, items, texts, settings.metrics, settings.judges, model_loader)
        outcomes = scored.items
        acc = accuracy_by_category(EvalResult(resolved.label, model_ref, outcomes))
        summary = {
            "accuracy": acc["all"][0] / acc["all"][1],
            "n": len(outcomes),
            "per_category": {k: {"correct": c, "total": t} for k, (c, t) in acc.items()},
            "model_label": resolved.label,
            "max_new_tokens": budget,
            "tools": list(settings.tools),
            "metrics": scored.summary,
            "cache_hits": hits,
            **{f"gen_{k}": v for k, v in speed.items()},
        }
        with ctx.session() as s:
            s.add_all(
                EvalItem(
                    run_id=run_id,
                    item_id=i.item_id,
                    category=i.category,
                    lang=i.lang,
                    prompt=i.prompt,
                    reference=i.reference,
                    prediction=i.prediction,
                    extracted=i.extracted,
                    correct=i.correct,
                    score=item_score,
                )
                for i, item_score in zip(outcomes, scored.scores, strict=True)
            )
            s.add_all(
                EvalItemScore(run_id=run_id, item_id=item_id, name=name, value=v, label=label, note=note)
                for item_id, names in scored.extra.items()
                for name, (v, label, note) in names.items()
            )
        run.succeed(summary)  # the summary's numbers also go to TensorBoard (and MLflow) for this run
    except BaseException as exc:
        run.fail(exc)
        raise
    return run_id


def _prompt(prompt: list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    messages = [m for m in prompt if not (system and m["role"] == "system")]
    return ([{"role": "system", "content": system}] if system else []) + messages


def _generate_cached(
    ctx: Context,
    resolved: ResolvedModel,
    prompts: list[list[dict[str, str]]],
    budget: int,
    settings: EvalSettings,
    progress: Progress,
    model_loader: Any,
    use_cache: bool,
) -> tuple[list[str], dict[str, float], int]:
    """Texts for all prompts: from the cache where present, generated (and cached) otherwise."""
    mkey = cache.model_key(ctx, resolved)
    generation = {"max_new_tokens": budget, **asdict(settings.sampling)}
    if settings.tools:  # without tools the key is what it always was: earlier generations stay cached
        generation["tools"] = sorted(settings.tools)
    keys = cache.item_keys(mkey, prompts, generation)
    found = cache.lookup(ctx, keys) if use_cache else {}
    missing = [i for i, k in enumerate(keys) if k not in found]
    speed: dict[str, float] = {"seconds": 0.0, "new_tokens": 0, "tokens_per_s": 0.0}
    if missing:
        tokenizer, model_obj = model_loader()

        def keep(batch: list[int], texts: list[str]) -> None:
            # Stored per batch: a preempted evaluation job resumes with only the rest to generate.
            new = {
                keys[missing[j]]: (t, len(tokenizer(t, add_special_tokens=False)["input_ids"]))
                for j, t in zip(batch, texts, strict=True)
            }
            found.update(new)
            if use_cache:
                cache.store(ctx, mkey, new)

        _, speed = gen.generate(
            tokenizer,
            model_obj,
            [prompts[i] for i in missing],
            budget,
            settings.batch_size,
            progress,
            label=f"evaluating {resolved.label}",
            sampling=settings.sampling,
            on_batch=keep,
            tools=settings.tools,
        )
    return [found[k][0] for k in keys], speed, len(keys) - len(missing)


def _choose_cached(
    ctx: Context,
    resolved: ResolvedModel,
    prompts: list[list[dict[str, str]]],
    items: list[Example],
    settings: EvalSettings,
    progress: Progress,
    model_loader: Any,
    use_cache: bool,
) -> tuple[list[str], dict[str, float], int]:
    """The choice (``extra["choices"]``) the model finds likelier for every item; cached like texts."""
    mkey = cache.model_key(ctx, resolved)
    keyed = [
        p + [{"role": "choice", "content": c} for c in e.extra["choices"]]
        for p, e in zip(prompts, items, strict=True)
    ]
    keys = cache.item_keys(mkey, keyed, {"choose": "mean_logprob"})
    found = cache.lookup(ctx, keys) if use_cache else {}
    missing = [i for i, k in enumerate(keys) if k not in found]
    started = time.perf_counter()
    if missing:
        tokenizer, model_obj = model_loader()
        with progress.task(f"scoring choices of {resolved.label}", total=len(missing)) as bar:
            for start in range(0, len(missing), settings.batch_size):
                # Stored per batch: a preempted evaluation job resumes with only the rest to score.
                batch = missing[start : start + settings.batch_size]
                asked = [(prompts[i], items[i].extra["choices"]) for i in batch]
                new = {}
                for i, logps in zip(
                    batch, tm.choice_logprobs(tokenizer, model_obj, asked, settings.batch_size), strict=True
                ):
                    choices = items[i].extra["choices"]
                    new[keys[i]] = (choices[max(range(len(choices)), key=logps.__getitem__)], 0)
                found.update(new)
                if use_cache:
                    cache.store(ctx, mkey, new)
                bar.advance(len(new))
    speed = {"seconds": time.perf_counter() - started, "new_tokens": 0, "tokens_per_s": 0.0}
    return [found[k][0] for k in keys], speed, len(keys) - len(missing)


def run_suite(
    ctx: Context,
    model_ref: str,
    suite: SuiteSpec,
    progress: Progress | None = None,
    done: dict[str, str] | None = None,
    on_done: Callable[[str, str], None] | None = None,
) -> list[str]:
    """Evaluate one model on every dataset of a suite; one eval run per dataset.

    Args:
        done: dataset -> eval run id of datasets already evaluated (a resumed job skips them).
        on_done: called with (dataset, run id) as each dataset finishes.
    """
    if not suite.datasets:
        raise NotFoundError(f"suite '{suite.name}' names no datasets")
    resolved = resolve_model(ctx, model_ref)
    settings = EvalSettings.from_suite(suite)
    done = dict(done or {})
    for d in suite.datasets:
        if d not in done:
            own = replace(settings, max_items=suite.items[d]) if d in suite.items else settings
            done[d] = evaluate(ctx, model_ref, d, own, progress, resolved)
            if on_done is not None:
                on_done(d, done[d])
    return [done[d] for d in suite.datasets]


def item_scores(ctx: Context, run_id: str) -> dict[str, dict[str, tuple[float, str | None, str | None]]]:
    """An eval run's per-item metric values and judge verdicts: item -> name -> (value, verdict, note)."""
    runs.get(ctx, run_id)  # another project's run is not found
    out: dict[str, dict[str, tuple[float, str | None, str | None]]] = {}
    with ctx.session() as s:
        for r in s.scalars(select(EvalItemScore).where(EvalItemScore.run_id == run_id)):
            out.setdefault(r.item_id, {})[r.name] = (r.value, r.label, r.note)
    return out


def load_result(ctx: Context, run_id: str) -> EvalResult:
    """An eval run's per-item outcomes, as the report takes them."""
    run = runs.get(ctx, run_id) if runs.exists(ctx, run_id) else None
    if run is None or run.kind != "eval":
        raise NotFoundError(f"no evaluation run '{run_id}'")
    with ctx.session() as s:
        rows = s.scalars(select(EvalItem).where(EvalItem.run_id == run_id).order_by(EvalItem.id))
        items = [
            ItemOutcome(
                r.item_id, r.category, r.lang, r.prompt, r.reference, r.prediction, r.extracted, r.correct
            )
            for r in rows
        ]
    return EvalResult(
        run.summary.get("model_label", run.spec.get("model", "")), run.spec.get("model", ""), items
    )
