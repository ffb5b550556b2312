"""Choice scoring: IMTS's shared-prompt pass against scoring every (prompt, choice) sequence whole.

    PYTHONPATH=src .venv/bin/python benchmarks/choice_scoring.py ~/.cache/imts/models/smollm2-135m-instruct

Scoring whole sequences is what lm-evaluation-harness's ``loglikelihood`` requests do for a multiple-choice
task; here it is ``imts.evals.textmetrics.answer_nlls``. ``choice_logprobs`` passes each prompt once and
continues every choice from its KV cache. Two sets in one process, each scored both ways twice (batches
of 64 items): the loop's general probe (short questions, 2 choices) and the first 100 hand-written
problems of ``examples/heldout/math_oot.jsonl`` with 4 answers each. Prints the seconds, the ratio and the
largest difference between the two ways' mean log-probabilities.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def sets() -> dict[str, list[tuple[list[dict[str, str]], list[str]]]]:
    probe_file = ROOT / "src/imts/flywheel/data/general_probe.jsonl"
    probe = [json.loads(line) for line in probe_file.open(encoding="utf-8")][:100]
    oot = [json.loads(line) for line in (ROOT / "examples/heldout/math_oot.jsonl").open(encoding="utf-8")][
        :100
    ]

    def answers(r: dict[str, Any]) -> list[str]:
        n = int(float(r["answer"].replace(",", "")))
        return [f"The answer is {n + d}." for d in (0, 1, -2, 10)]

    return {
        "general probe, 2 choices": [
            ([{"role": "user", "content": r["prompt"]}], [r["chosen"], r["rejected"]]) for r in probe
        ],
        "math-oot, 4 choices": [([{"role": "user", "content": r["prompt"]}], answers(r)) for r in oot],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    from imts.evals import textmetrics as tm
    from imts.inference.generate import load

    tokenizer, model = load(args.model)
    for name, items in sets().items():
        for _ in range(2):
            t = time.perf_counter()
            whole: list[list[float]] = []
            for s in range(0, len(items), args.batch):
                chunk = items[s : s + args.batch]
                scored = iter(
                    tm.answer_nlls(tokenizer, model, [(p, c) for p, cs in chunk for c in cs], args.batch)
                )
                whole += [[-nll / n for nll, n in (next(scored) for _ in cs)] for _, cs in chunk]
            t_whole = time.perf_counter() - t
            t = time.perf_counter()
            shared: list[list[float]] = []
            for s in range(0, len(items), args.batch):
                shared += tm.choice_logprobs(tokenizer, model, items[s : s + args.batch], args.batch)
            t_shared = time.perf_counter() - t
            diff = max(
                abs(a - b) for w, sh in zip(whole, shared, strict=True) for a, b in zip(w, sh, strict=True)
            )
            print(
                f"{name}: whole sequences {t_whole:.1f} s, shared prompt {t_shared:.1f} s, "
                f"x{t_whole / t_shared:.2f}, largest difference {diff:.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
