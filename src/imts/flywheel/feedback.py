"""Feedback: an iteration's evaluations become the next iteration's data actions, each with its reason.

Only the validation split drives the actions and the choice of the best model: the test split and the
held-out sets are reported, never looked at for decisions (choosing data by test errors would make the
test score a training signal). How evidence maps to actions:

- a **weak category** (validation accuracy 5+ points under the overall, or one the analysis saw under-
  represented) -> verified augmentation of that category to a larger share of the training rows (a multi-
  step category: chained from the data's one-step rows, see :mod:`imts.optimise.augment`);
- **answer-only** training rows left in failing categories -> chain-of-thought rewriting;
- **failed and regressed items** (wrong now; right before, wrong now) -> their nearest training rows
  (MiniLM embeddings) are reinforced with verified variants: their neighbourhood gets more weight;
- **forgetting** (the general probe more than the tolerance under the base model) -> replay: the rows of
  the project's other datasets closest to the probe's prompts are mixed into the training split.

The result also says what the previous actions changed: accuracy per category and per bad-case cluster,
before and after.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from imts.evals.report.model import EvalResult, ItemOutcome
from imts.flywheel.machine import Outcome, Score, best
from imts.flywheel.spec import LoopSpec
from imts.flywheel.steps import eval_sets
from imts.store.context import Context

WEAK_MARGIN = 0.05
MAX_SHARE = 0.4
NEIGHBOURS = 2
REPLAY_SHARE = 0.1


class SetResult(BaseModel):
    label: str
    ref: str
    run_id: str
    score: Score
    base: Score | None = None  # the base model's on the same items
    previous: Score | None = None  # the previous iteration's model's
    p_vs_previous: float | None = None  # paired test against the previous model on the same items


class ClusterEffect(BaseModel):
    """A bad-case cluster of the previous model on validation, and its error rate now."""

    label: str
    category: str
    size: int
    error_before: float
    error_after: float


class DataAction(BaseModel):
    kind: str  # augment | cot | reinforce | replay
    why_en: str
    why_zh: str
    params: dict[str, Any] = Field(default_factory=dict)


class Feedback(BaseModel):
    iteration: int
    run_id: str
    model_version: str | None
    sets: list[SetResult]
    clusters: list[ClusterEffect]
    actions: list[DataAction]
    fix: dict[str, Any]  # the next repair's FixSpec (without ``data``)
    outcome: Outcome
    notes: list[dict[str, str]] = Field(default_factory=list)  # what could not be done, and why


def score(items: list[ItemOutcome]) -> Score:
    cats: dict[str, list[int]] = {}
    langs: dict[str, list[int]] = {}
    for i in items:
        for table, key in ((cats, i.category), (langs, i.lang or "?")):
            c = table.setdefault(key, [0, 0])
            c[0] += i.correct
            c[1] += 1
    return Score(
        correct=sum(i.correct for i in items),
        total=len(items),
        by_category={k: (v[0], v[1]) for k, v in sorted(cats.items())},
        by_lang={k: (v[0], v[1]) for k, v in sorted(langs.items())},
    )


def _results(ctx: Context, run_ids: list[str]) -> list[EvalResult]:
    from imts.evals.service import load_result

    return [load_result(ctx, r) for r in run_ids]


def _aligned(a: list[ItemOutcome], b: list[ItemOutcome]) -> tuple[list[ItemOutcome], list[ItemOutcome]]:
    """The items both results scored, in one order (paired tests need the same items)."""
    by_id = {i.item_id: i for i in b}
    pairs = [(i, by_id[i.item_id]) for i in a if i.item_id in by_id]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def compute(ctx: Context, spec: LoopSpec, state: dict[str, Any], iteration: int) -> Feedback:
    """The feedback of ``iteration`` (its evaluations are in ``state``)."""
    from imts.evals.significance import mcnemar
    from imts.store import runs

    sets = eval_sets(state, spec)
    now = _results(ctx, state["evals"][str(iteration)])
    base = _results(ctx, state["baseline"])
    prev_runs = state.get("evals", {}).get(str(iteration - 1))
    prev = _results(ctx, prev_runs) if prev_runs else base
    out_sets = []
    for n, (label, ref) in enumerate(sets):
        a, b = _aligned(prev[n].items, now[n].items)
        out_sets.append(
            SetResult(
                label=label, ref=ref, run_id=state["evals"][str(iteration)][n],
                score=score(now[n].items), base=score(base[n].items), previous=score(prev[n].items),
                p_vs_previous=mcnemar([i.correct for i in a], [i.correct for i in b]).p_value if a else None,
            )
        )  # fmt: skip
    val_now = now[0].items
    # The paired test against the best model so far (the base model before any iteration), on validation.
    outcomes = [Outcome.model_validate(o) for o in state.get("outcomes", [])]
    top = best(spec, outcomes)
    top_items = _results(ctx, [state["evals"][str(top.iteration)][0]])[0].items if top else base[0].items
    a, b = _aligned(top_items, val_now)
    test = mcnemar([i.correct for i in a], [i.correct for i in b])
    gain = (sum(i.correct for i in b) - sum(i.correct for i in a)) / max(1, len(a))
    probe = next((s for s in out_sets if s.label == "probe"), None)
    drop = (probe.base.accuracy - probe.score.accuracy) if probe and probe.base else None
    target_set = out_sets[1] if spec.target_on == "test" or len(out_sets) < 3 else out_sets[2]
    run_id = state["runs"][str(iteration)]
    notes: list[dict[str, str]] = []
    actions, fix = _actions(ctx, spec, state, val_now, prev[0].items, drop, notes)
    outcome = Outcome(
        iteration=iteration,
        run_id=run_id,
        decision=out_sets[0].score.accuracy,
        target_score=target_set.score.accuracy,
        probe_drop=drop,
        p_vs_best=test.p_value,
        gain_vs_best=gain,
        # this iteration's repair applied the previous feedback's fix: did it mix in replay rows?
        replayed=iteration > 1 and bool((state.get("next_fix") or {}).get("replay")),
        actions=len(actions),
    )
    return Feedback(
        iteration=iteration,
        run_id=run_id,
        model_version=runs.get(ctx, run_id).summary.get("model_version"),
        sets=out_sets,
        clusters=_cluster_effects(prev[0].items, val_now),
        actions=actions,
        fix=fix,
        outcome=outcome,
        notes=notes,
    )


def _cluster_effects(before: list[ItemOutcome], after: list[ItemOutcome]) -> list[ClusterEffect]:
    from imts.evals.analysis import bad_case_clusters

    a, b = _aligned(before, after)
    return [
        ClusterEffect(
            label=c.label,
            category=c.category,
            size=c.size,
            error_before=c.error_before,
            error_after=c.error_after,
        )
        for c in bad_case_clusters(a, b, {})
    ]


def _train_rows(ctx: Context, ref: str) -> list[dict[str, Any]]:
    from imts.data.versions import load_rows, resolve

    rows = load_rows(ctx, resolve(ctx, ref).version)
    return [r for r in rows if (r.get("split") or "train") == "train"]


def _prompt(row: dict[str, Any]) -> str:
    from imts.optimise.cot import user_text

    return user_text(row)


def _actions(
    ctx: Context,
    spec: LoopSpec,
    state: dict[str, Any],
    val: list[ItemOutcome],
    val_before: list[ItemOutcome],
    probe_drop: float | None,
    notes: list[dict[str, str]],
) -> tuple[list[DataAction], dict[str, Any]]:
    from imts.optimise.cot import is_answer_only

    train = _train_rows(ctx, state["data"])
    total = max(1, len(train))
    shares = Counter(r.get("category") or "" for r in train)
    val_score = score(val)  # per category: (right, items)
    acc_all = val_score.accuracy
    by_cat = val_score.by_category
    actions: list[DataAction] = []
    fix: dict[str, Any] = {}
    weak = sorted(c for c, (ok, n) in by_cat.items() if n >= 5 and ok / n < acc_all - WEAK_MARGIN)
    augment: dict[str, float] = {}
    for cat in weak:
        ok, n = by_cat[cat]
        share = shares.get(cat, 0) / total
        target = round(min(MAX_SHARE, max(spec.augment_share, share * 1.5)), 3)
        if target <= share + 0.01:
            continue
        augment[cat] = target
        actions.append(
            DataAction(
                kind="augment",
                why_en=f"{cat}: {ok}/{n} validation items right ({ok / n:.0%}) against {acc_all:.0%} "
                f"overall, "
                f"{share:.0%} of the training rows -> augment to {target:.0%}",
                why_zh=f"{cat}：验证集 {ok}/{n} 正确（{ok / n:.0%}），整体 {acc_all:.0%}；"
                f"训练数据占 {share:.0%}"
                f" -> 扩充至 {target:.0%}",
                params={"category": cat, "target_share": target, "accuracy": ok / n, "share": share},
            )
        )
    if augment:
        fix["augment"] = augment
    failing_cats = {c for c, (ok, n) in by_cat.items() if ok < n}
    answer_only = [r for r in train if is_answer_only(r) and (r.get("category") or "") in failing_cats]
    if answer_only:
        cats = sorted({r.get("category") or "" for r in answer_only})
        fix |= {"cot": True, "cot_categories": cats}
        actions.append(
            DataAction(
                kind="cot",
                why_en=f"{len(answer_only)} answer-only training rows in failing categories "
                f"({', '.join(cats)}) "
                "-> rewrite as question -> rationale -> answer",
                why_zh=f"失败类别（{'、'.join(cats)}）中有 {len(answer_only)} 条只有答案的训练数据"
                " -> 改写为思维链",
                params={"rows": len(answer_only), "categories": cats},
            )
        )
    seeds = _neighbours(ctx, train, val, val_before)
    if seeds:
        fix |= {"reinforce": seeds, "reinforce_per_seed": 2}
        failed = sum(not i.correct for i in val)
        a, b = _aligned(val_before, val)
        regressed = sum(x.correct and not y.correct for x, y in zip(a, b, strict=True))
        actions.append(
            DataAction(
                kind="reinforce",
                why_en=f"{failed} validation items failed, {regressed} of them regressed since the "
                "last model "
                f"-> reinforce their {len(seeds)} nearest training rows with verified variants",
                why_zh=f"验证集 {failed} 条失败，其中 {regressed} 条较上一模型退步 -> "
                "用已验证的变体强化与之最近的 "
                f"{len(seeds)} 条训练数据",
                params={"failed": failed, "regressed": regressed, "seeds": len(seeds)},
            )
        )
    if probe_drop is not None and probe_drop > spec.forgetting_tolerance:
        replay = _replay(ctx, spec, state, total)
        if replay:
            fix["replay"] = replay
            n = sum(len(v) for v in replay.values())
            actions.append(
                DataAction(
                    kind="replay",
                    why_en=f"the general probe fell {probe_drop:.1%} under the base model (tolerance "
                    f"{spec.forgetting_tolerance:.0%}) -> mix in {n} replay rows closest to general prompts",
                    why_zh=f"通用能力探针比基座模型低 {probe_drop:.1%}"
                    f"（容忍 {spec.forgetting_tolerance:.0%}）"
                    f" -> 混入 {n} 条最接近通用问题的回放数据",
                    params={"rows": n, "drop": probe_drop},
                )
            )
        else:
            notes.append({
                "en": "forgetting shows, but the project holds no other dataset of this format to replay",
                "zh": "出现遗忘，但项目中没有同格式的其他数据集可供回放",
            })  # fmt: skip
    return actions, fix


def _embed(ctx: Context, texts: list[str]) -> np.ndarray:
    from imts.data.embeddings import EmbeddingCache

    return EmbeddingCache(ctx.settings.workspace / "cache" / "embeddings").embed(texts)[0]


def _neighbours(
    ctx: Context, train: list[dict[str, Any]], val: list[ItemOutcome], val_before: list[ItemOutcome]
) -> list[str]:
    """The training rows nearest to the validation items the model fails (regressed ones first), at most
    one in ten training rows."""
    from imts.optimise.cot import is_answer_only

    was_right = {i.item_id for i in val_before if i.correct}
    failed = sorted((i for i in val if not i.correct), key=lambda i: i.item_id not in was_right)
    pool = [r for r in train if not is_answer_only(r)]
    if not failed or not pool:
        return []
    cap = max(1, len(train) // 10)
    q = _embed(ctx, [i.prompt for i in failed])
    m = _embed(ctx, [_prompt(r) for r in pool])
    sims = q @ m.T
    chosen: dict[str, None] = {}
    for row in sims:
        for j in np.argsort(-row)[:NEIGHBOURS]:
            chosen.setdefault(pool[int(j)]["id"], None)
        if len(chosen) >= cap:
            break
    return list(chosen)[:cap]


def _replay(ctx: Context, spec: LoopSpec, state: dict[str, Any], total: int) -> dict[str, list[str]]:
    """Rows of the replay pool closest to the general probe's prompts (one in ten training rows)."""
    from imts.data.service import list_versions
    from imts.data.versions import load_rows, resolve

    own = {spec.data.split("@")[0]} | {r.split("@")[0].split(":")[0] for r in state.get("heldout", [])}
    own |= {(state.get("probe") or "").split("@")[0]}
    fmt = resolve(ctx, state["data"]).version.format
    names = spec.replay or sorted({v.dataset for v in list_versions(ctx)} - own)
    candidates: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        version = resolve(ctx, name).version
        if version.format != fmt:
            continue
        candidates += [
            (version.ref, r) for r in load_rows(ctx, version) if r.get("split") in (None, "", "train")
        ]
    probe = state.get("probe")
    if not candidates or not probe:
        return {}
    probe_rows = load_rows(ctx, resolve(ctx, probe).version)
    q = _embed(
        ctx, [str(r.get("prompt") or r.get("messages", [{}])[0].get("content", "")) for r in probe_rows]
    )
    m = _embed(ctx, [_prompt(r) for _, r in candidates])
    closeness = (q @ m.T).max(axis=0)
    out: dict[str, list[str]] = {}
    for j in np.argsort(-closeness)[: max(1, int(total * REPLAY_SHARE))]:
        ref, r = candidates[int(j)]
        out.setdefault(ref, []).append(r["id"])
    return out
