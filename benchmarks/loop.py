"""The closed loop on the example task, measured: time per iteration broken down by step, the scores of
every evaluation set per iteration (the test split from the generator's templates, the hand-written
out-of-template set, the general probe), and, in the same run, what a user would do instead — one plain
LoRA turn on the split data (today's ``imts demo --plain``), scored on the same items.

    PYTHONPATH=src:. .venv/bin/python benchmarks/loop.py [--iterations 2] [--eval-items 100] [--no-plain]
        [--control-seeds 0,1,2]

``--control-seeds``: the loop's last iteration trained again from the model it went on from, once on its
own data version and once on the data that model was trained on (no data action), for every seed: what
the feedback's data actions did beyond more training, with the spread that the seed alone gives.

Runs in a fresh workspace (``--workspace``, default a temporary folder) with the embedded stack: the
loop's steps are jobs on the local pool, driven by the scheduler passes this process runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--eval-items", type=int, default=100)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--workspace", type=Path, default=None)
    ap.add_argument("--no-plain", action="store_true", help="Skip the plain LoRA turn.")
    ap.add_argument(
        "--loop", default=None, help="A finished loop of --workspace: measure only the plain turn."
    )
    ap.add_argument(
        "--control-seeds", default="", help="Comma list of seeds for the data-actions control (see above)."
    )
    args = ap.parse_args()

    from imts.core.settings import Settings
    from imts.flywheel import service
    from imts.flywheel.demo import DEMO_OVERRIDES, run_loop_demo
    from imts.services.startup import local_context

    root = args.workspace or Path(tempfile.mkdtemp(prefix="imts-loop-bench-"))
    ctx = local_context(Settings(workspace=root))
    t0 = time.perf_counter()
    loop_id = args.loop or run_loop_demo(ctx, args.rows, 0, None, args.iterations, args.eval_items).loop_id
    loop_s = time.perf_counter() - t0
    view = service.get(ctx, loop_id)
    its = service.iterations(ctx, loop_id)
    took = (
        f"{loop_s / 60:.1f} min end to end" if args.loop is None else f"{(view.updated_at - view.created_at)}"
    )
    print(f"\nloop {view.id}: {view.status} ({view.stop_reason}), {took}")
    phases = ["analyze", "split", "repair", "baseline", "train", "evaluate", "feedback"]
    print("| iteration | " + " | ".join(phases) + " | total (s) |")
    print("|---" * (len(phases) + 2) + "|")
    for i in its:
        cells = [f"{i.seconds[p]:.0f}" if p in i.seconds else "" for p in phases]
        print(f"| {i.iteration} | " + " | ".join(cells) + f" | {sum(i.seconds.values()):.0f} |")
    labels = list(its[0].scores)
    print("\n| set | base | " + " | ".join(f"iteration {i.iteration}" for i in its) + " |")
    print("|---" * (len(its) + 2) + "|")
    for label in labels:
        row = [f"{i.scores.get(label, 0):.1%}" for i in its]
        print(f"| {label} | {its[0].base.get(label, 0):.1%} | " + " | ".join(row) + " |")
    if args.control_seeds:
        control(ctx, view, its, [int(x) for x in args.control_seeds.split(",")])
    if args.no_plain:
        return
    # What a user would do instead: one LoRA turn on the split data as it is, the same recipe.
    from imts.train.service import train
    from imts.train.spec import RunSpec

    versions = view.versions
    best = view.best["iteration"] if view.best else its[-1].iteration
    loop_scores = next(i.scores for i in its if i.iteration == best)
    # The best model's trainings: itself, and the ones it went on from (continue_training).
    by_it = {i.iteration: i for i in its}
    chain, at = [], best
    while at is not None:
        chain.append(at)
        at = by_it[at].started_from
    per_turn = RunSpec.from_sources(overrides=DEMO_OVERRIDES, base_model="b", data="d").max_steps
    plain: dict[int, dict[str, float]] = {}
    # One plain turn of today's demo, and (when the loop's best model had more than one training) a
    # plain turn with as many steps as its trainings together: the data actions against more steps alone.
    for steps in sorted({per_turn, per_turn * len(chain)}):
        spec = RunSpec.from_sources(
            overrides=[*DEMO_OVERRIDES, f"max_steps={steps}"], base_model=view.spec.base_model,
            data=versions["split"],
        )  # fmt: skip
        t1 = time.perf_counter()
        run_id = train(ctx, spec)
        plain[steps] = score(ctx, run_id, view)
        print(f"plain LoRA turn of {steps} steps: {(time.perf_counter() - t1) / 60:.1f} min")
    steps_note = f"{len(chain)} trainings of {per_turn} steps: iterations {sorted(chain)}"
    print(f"\nplain LoRA turns against the loop's best model (iteration {best}, {steps_note}):")
    heads = [f"plain {n} steps" for n in plain]
    diff_heads = [f"loop - {h}" for h in heads]
    print("| set | base | " + " | ".join([*heads, "loop", *diff_heads]) + " |")
    print("|---" * (3 + 2 * len(heads)) + "|")
    for label, ours in loop_scores.items():
        base = its[0].base.get(label, 0)
        cells = [f"{plain[n].get(label, 0):.1%}" for n in plain]
        diffs = [f"{(ours - plain[n].get(label, 0)) * 100:+.1f}" for n in plain]
        print(f"| {label} | {base:.1%} | " + " | ".join([*cells, f"{ours:.1%}", *diffs]) + " |")


def score(ctx: Any, run_id: str, view: Any) -> dict[str, float]:
    """Accuracy of ``run_id`` on every set the loop scores, by the loop's own evaluation suite (its
    decoding tools, its item limits)."""
    from imts.evals.service import load_result, run_suite
    from imts.evals.suite import SuiteSpec
    from imts.flywheel.steps import eval_sets, suite

    state = {**view.versions, "heldout_items": view.spec.heldout_items}
    labels = [label for label, _ in eval_sets(state, view.spec)]
    run_ids = run_suite(ctx, run_id, SuiteSpec.model_validate(suite(state, view.spec)))
    out = {}
    for label, run in zip(labels, run_ids, strict=True):
        items = load_result(ctx, run).items
        out[label] = sum(i.correct for i in items) / max(1, len(items))
    return out


def control(ctx: Any, view: Any, its: list[Any], seeds: list[int]) -> None:
    """The last iteration trained again from the model it went on from, on its data version ("loop") and
    on that model's own training data ("unchanged"), once per seed; every set scored."""
    from imts.store import runs
    from imts.train.service import train
    from imts.train.spec import RunSpec

    last = its[-1]
    by_it = {i.iteration: i for i in its}
    if last.started_from is None or last.run_id is None:
        print(f"\niteration {last.iteration} was trained from the base model: no data-actions control")
        return
    start = by_it[last.started_from].run_id
    arms = {"unchanged": runs.get(ctx, start).spec["data"], "loop": runs.get(ctx, last.run_id).spec["data"]}
    scores: dict[str, dict[int, dict[str, float]]] = {arm: {} for arm in arms}
    for seed in seeds:
        for arm, data in arms.items():
            if arm == "loop" and seed == view.spec.seed:  # the loop's own training: its scores
                scores[arm][seed] = dict(last.scores)
                continue
            t1 = time.perf_counter()
            spec = RunSpec.from_sources(
                overrides=view.spec.train, base_model=view.spec.base_model, data=data, seed=seed,
                init_from=start,
            )  # fmt: skip
            run_id = train(ctx, spec)
            scores[arm][seed] = score(ctx, run_id, view)
            print(f"{arm} ({data}), seed {seed}: {(time.perf_counter() - t1) / 60:.1f} min", flush=True)
    print(f"\niteration {last.iteration} again from iteration {last.started_from}'s model "
          f"(unchanged: {arms['unchanged']}, loop: {arms['loop']}), seeds {seeds}:")  # fmt: skip
    heads = [f"{a} seed {s}" for a in arms for s in seeds]
    print("| set | " + " | ".join(heads) + " | mean loop − unchanged |")
    print("|---" * (2 + len(arms) * len(seeds)) + "|")
    for label in last.scores:
        cells = [f"{scores[a][s].get(label, 0):.1%}" for a in arms for s in seeds]
        diff = sum(scores["loop"][s].get(label, 0) - scores["unchanged"][s].get(label, 0) for s in seeds)
        print(f"| {label} | " + " | ".join(cells) + f" | {diff / len(seeds) * 100:+.1f} |")


if __name__ == "__main__":
    main()
