"""Data optimisation, measured in one run: PII replacement against Presidio, CoT rewriting and verified
augmentation throughput, and an independent audit of the generated items.

PII side by side, on the same rows (the example data's messages plus the hand-written labelled fixture of
``tests/optimise``, so that personal data is dense enough to matter):

* IMTS: ``imts.optimise.pii`` (Presidio's AnalyzerEngine, ``NoOpNlpEngine``, IMTS recognizers) and
  consistent format-valid surrogates.
* Presidio: its default analyzer + anonymizer needs the spaCy model ``en_core_web_lg``, which is not
  installed here and cannot be downloaded (presidio #1447). The baseline is therefore Presidio's engine
  with its own predefined recognizers (patterns, checksums and context words; the spaCy NER recognizer
  gets no NLP artifacts from the ``NoOpNlpEngine`` and finds nothing) and ``AnonymizerEngine`` with its
  default operator (``<ENTITY_TYPE>``). That is the most Presidio does offline.

Both are timed from text to replaced text. Recall per type is measured on the labelled fixture
(Presidio's entity names mapped onto IMTS's where they mean the same thing).

    PYTHONPATH=src:. .venv/bin/python benchmarks/optimise.py [--rows 3000] [--target 0.15]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

PRESIDIO_TO_IMTS = {
    "PERSON": "PERSON",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "CREDIT_CARD": "BANK_CARD",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_PASSPORT": "PASSPORT",
    "LOCATION": "ADDRESS",
}


def example_rows(n: int, seed: int) -> list[dict]:
    from examples import mathgen

    out = []
    for r in mathgen.generate(n=n, seed=seed)[0]:
        messages = [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
        out.append({"id": r["id"], "messages": messages, "answer": r["answer"], "category": r["category"],
                    "lang": r["lang"]})  # fmt: skip
    return out


def presidio_engine():  # type: ignore[no-untyped-def]
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"]), AnonymizerEngine()


def bench_pii(texts: list[str], labelled: list[tuple[str, set]]) -> dict:
    from imts.optimise.pii.engine import Replacer, analyzer, find

    analyzer()  # build both engines untimed
    analyze, anonymize = presidio_engine()
    t = time.perf_counter()
    rep = Replacer(b"benchmark")
    imts_out = [rep.replace(x)[0] for x in texts]
    imts_s = time.perf_counter() - t
    t = time.perf_counter()
    pres_out = []
    for x in texts:
        found = analyze.analyze(x, language="en")
        pres_out.append(anonymize.anonymize(x, found).text)
    pres_s = time.perf_counter() - t
    # Recall / precision per IMTS type on the labelled fixture.
    scores: dict[str, dict[str, Counter]] = {"imts": {}, "presidio": {}}
    for side in scores:
        tp, fp, fn = Counter(), Counter(), Counter()
        for text, gold in labelled:
            if side == "imts":
                pred = {(s.entity, s.start, s.end) for s in find(text)}
            else:
                pred = {(PRESIDIO_TO_IMTS.get(r.entity_type, r.entity_type), r.start, r.end)
                        for r in analyze.analyze(text, language="en")}  # fmt: skip
            for e, *_ in pred & gold:
                tp[e] += 1
            for e, *_ in pred - gold:
                fp[e] += 1
            for e, *_ in gold - pred:
                fn[e] += 1
        scores[side] = {"tp": tp, "fp": fp, "fn": fn}
    emails = {o for (e, o) in rep.surrogates.mapping if e == "EMAIL_ADDRESS"}
    return {
        "rows": len(texts),
        "imts_rows_per_s": len(texts) / imts_s,
        "presidio_rows_per_s": len(texts) / pres_s,
        "scores": scores,
        "distinct_emails": len(emails),
        "distinct_email_surrogates": len({rep.surrogates.mapping[("EMAIL_ADDRESS", o)] for o in emails}),
        "presidio_distinct_email_replacements": len(set(re.findall(r"<EMAIL_ADDRESS>", " ".join(pres_out)))),
        "imts_changed": sum(a != b for a, b in zip(texts, imts_out, strict=True)),
        "presidio_changed": sum(a != b for a, b in zip(texts, pres_out, strict=True)),
    }


def bench_cot(rows: list[dict]) -> dict:
    from imts.core.progress import NullProgress
    from imts.optimise.apply import cot_candidates, rewrite
    from imts.optimise.cot import EmbeddedTeacher
    from imts.optimise.spec import FixSpec

    candidates = cot_candidates(rows, FixSpec(data="x", cot=True))
    t = time.perf_counter()
    done = rewrite(candidates, EmbeddedTeacher(), {}, lambda: None, lambda: False, NullProgress())
    s = time.perf_counter() - t
    per_cat: dict[str, list[int]] = {}
    for r in candidates:
        c = per_cat.setdefault(r["category"], [0, 0])
        c[0] += 1
        c[1] += done[r["id"]][0] is not None
    ok = sum(v[1] for v in per_cat.values())
    return {"answer_only": len(candidates), "rewritten": ok, "seconds": s, "verified_per_s": ok / s,
            "per_category": per_cat}  # fmt: skip


def bench_augment(rows: list[dict], target: float, seed: int) -> dict:
    from imts.optimise.audit import audit
    from imts.optimise.augment import AugmentState, Guard, augment_category, needed
    from imts.optimise.cot import is_answer_only

    count = sum(r["category"] == "division" for r in rows)
    want = needed(count, len(rows), target)
    seeds = [r for r in rows if r["category"] == "division" and not is_answer_only(r)]
    t = time.perf_counter()
    st = augment_category("division", seeds, want, Guard(rows, []), seed, AugmentState())
    s = time.perf_counter() - t
    audited = st.accepted[:200]
    wrong = [r["id"] for r in audited if not audit(r)[0]]
    after = (count + len(st.accepted)) / (len(rows) + len(st.accepted))
    return {"before": count / len(rows), "after": after, "wanted": want, "accepted": len(st.accepted),
            "tried": st.tried, "rejected": st.rejected, "seconds": s, "verified_per_s": len(st.accepted) / s,
            "audited": len(audited), "audit_wrong": wrong}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--target", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from tests.optimise.pii_fixture import load

    rows = example_rows(args.rows, args.seed)
    labelled = load()
    texts = [m["content"] for r in rows for m in r["messages"]] + [t for t, _ in labelled]
    pii = bench_pii(texts, labelled)
    ratio = pii["imts_rows_per_s"] / pii["presidio_rows_per_s"]
    print(
        f"PII: {pii['rows']} texts; IMTS {pii['imts_rows_per_s']:.0f} rows/s, Presidio (its pattern "
        f"recognizers, no spaCy model) {pii['presidio_rows_per_s']:.0f} rows/s: ratio {ratio:.2f}x"
    )
    for side in ("imts", "presidio"):
        sc = pii["scores"][side]
        line = []
        for e in sorted(set(sc["tp"]) | set(sc["fn"])):
            tp, fp, fn = sc["tp"][e], sc["fp"][e], sc["fn"][e]
            line.append(f"{e} P={tp / max(1, tp + fp):.2f} R={tp / max(1, tp + fn):.2f}")
        print(f"  {side}: " + "; ".join(line))
    print(
        f"  e-mails: {pii['distinct_emails']} distinct originals -> {pii['distinct_email_surrogates']} "
        f"IMTS surrogates, {pii['presidio_distinct_email_replacements']} Presidio replacement value(s)"
    )
    cot = bench_cot(rows)
    print(f"CoT: {cot['rewritten']}/{cot['answer_only']} answer-only rows rewritten and verified, "
          f"{cot['verified_per_s']:.1f} verified rows/s; per category (answer-only, rewritten): "
          f"{json.dumps(cot['per_category'])}")  # fmt: skip
    aug = bench_augment(rows, args.target, args.seed)
    print(f"augment division {aug['before']:.1%} -> {aug['after']:.1%} (target {args.target:.0%}): "
          f"{aug['accepted']} accepted of {aug['tried']} tried, rejected {aug['rejected']}; "
          f"{aug['verified_per_s']:.1f} verified items/s; independent audit: {len(aug['audit_wrong'])} wrong "
          f"of {aug['audited']}")  # fmt: skip


if __name__ == "__main__":
    main()
