"""Plan and apply a data fix: PII replacement, then chain-of-thought rewriting, then augmentation.

The result is a pure function of the source version, the spec and the project's secret: every random
choice is seeded from ``(seed, category, index)`` or keyed on a row, never on timing. The sandbox
verification, the slow part, runs in chunks whose results are saved in the job's data as they come
(``checkpoint``), so an attempt after a kill -9 reuses them and ends with the same version as an
uninterrupted run; the version itself is committed atomically, and a later attempt that finds the
version its job already made returns it (no second version, no item added twice).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from imts.agents.chat import ChatBackend
from imts.core.progress import NullProgress, Progress
from imts.core.text import normalise
from imts.optimise.augment import AugmentState, Guard, augment_category, chain_seeds, needed
from imts.optimise.cot import (
    ChatTeacher,
    EmbeddedTeacher,
    Teacher,
    assistant_text,
    is_answer_only,
    recorded_answer,
    user_text,
    with_response,
)
from imts.optimise.spec import CategoryAugment, CategoryCot, Change, FixReport, FixSpec
from imts.optimise.verify import verify

if TYPE_CHECKING:  # Presidio takes seconds to import: only a fix that replaces PII pays for it
    from imts.optimise.pii.engine import Replacer

COT_CHUNK = 200
HELD_OUT = ("val", "validation", "test")


def held_out(row: dict[str, Any]) -> bool:
    return (row.get("split") or "") in HELD_OUT


def in_review(seed: int, row_id: str, share: float) -> bool:
    """Whether ``row_id`` is in the review sample: a keyed hash, so the sample is the same every run."""
    if share <= 0:
        return False
    h = int(hashlib.sha256(f"review:{seed}:{row_id}".encode()).hexdigest()[:8], 16)
    return h < share * 0xFFFFFFFF


# Fields that hold no personal data by construction (ids, labels of the row, the split).
NOT_TEXT = frozenset({"id", "category", "lang", "split", "format"})


def _texts(value: Any, out: list[str]) -> None:
    """Every string inside ``value`` (nested lists and mappings), in a fixed order."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _texts(v, out)
    elif isinstance(value, list):
        for v in value:
            _texts(v, out)


def _put(value: Any, new: list[str]) -> Any:
    """``value`` with its strings replaced, in ``_texts``'s order, from ``new`` (consumed)."""
    if isinstance(value, str):
        return new.pop(0)
    if isinstance(value, dict):
        return {k: _put(v, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_put(v, new) for v in value]
    return value


def replace_pii(rows: list[dict[str, Any]], rep: Replacer) -> tuple[list[dict[str, Any]], list[Change]]:
    """Personal data replaced in every text of every row, all splits: the messages, the answer, a
    preference row's prompt/chosen/rejected, a text row's text, and every string kept in ``meta`` (the
    source's other fields), one row's texts together so a person keeps one surrogate across them."""
    out, changes = [], []
    for row in rows:
        fields = {k: v for k, v in row.items() if k not in NOT_TEXT and v is not None}
        meta = fields.get("meta")
        if isinstance(meta, str):
            with contextlib.suppress(json.JSONDecodeError):  # not JSON: replaced as the text it is
                fields["meta"] = json.loads(meta)
        texts: list[str] = []
        _texts(fields, texts)
        replaced, spans = rep.replace_all(texts)
        kinds = Counter(s.entity for s in spans)
        if kinds or replaced != texts:
            new = _put(fields, list(replaced))
            if isinstance(meta, str) and not isinstance(new.get("meta"), str):
                new["meta"] = json.dumps(new["meta"], ensure_ascii=False, sort_keys=True)
            row = {**row, **new}
            why = "personal data replaced / 个人信息已替换: " + ", ".join(
                f"{k}×{n}" for k, n in sorted(kinds.items())
            )
            changes.append(Change(row_id=row["id"], change="replaced", why=why))
        out.append(row)
    return out, changes


def cot_candidates(rows: list[dict[str, Any]], spec: FixSpec) -> list[dict[str, Any]]:
    wanted_ids = set(spec.cot_row_ids)
    return [
        r
        for r in rows
        if not held_out(r)
        and is_answer_only(r)
        and (not spec.cot_categories or r.get("category") in spec.cot_categories)
        and (not wanted_ids or r["id"] in wanted_ids)
    ]


def rewrite(
    candidates: list[dict[str, Any]],
    teacher: Teacher,
    done: dict[str, list[Any]],
    checkpoint: Callable[[], None],
    should_stop: Callable[[], bool],
    progress: Progress,
) -> dict[str, list[Any]]:
    """Row id -> [new response or None, reason], for every candidate; chunks already in ``done`` are
    reused (a resumed job), each new chunk is verified in one sandbox batch and saved."""
    todo = [r for r in candidates if r["id"] not in done]
    with progress.task("rewriting answer-only rows", total=len(candidates)) as task:
        task.advance(len(candidates) - len(todo))
        for at in range(0, len(todo), COT_CHUNK):
            if should_stop():
                from imts.core.errors import Interrupted

                raise Interrupted()
            chunk = todo[at : at + COT_CHUNK]
            drafts = [(r, *teacher.rationale(r)) for r in chunk]
            written = [(r, text) for r, text, _ in drafts if text is not None]
            verdicts = verify([(r["id"], user_text(r), text, recorded_answer(r)) for r, text in written])
            by_id = {r["id"]: v for (r, _), v in zip(written, verdicts, strict=True)}
            for r, text, why in drafts:
                v = by_id.get(r["id"])
                if text is None:
                    done[r["id"]] = [None, why]
                elif v is not None and not v.ok:
                    done[r["id"]] = [None, f"rejected by the verifier / 未通过验证: {v.reason}"]
                else:
                    done[r["id"]] = [text, f"{why}; {v.reason if v else ''}"]
            checkpoint()
            task.advance(len(chunk))
    return done


def plan_or_apply(
    rows: list[dict[str, Any]],
    spec: FixSpec,
    secret: bytes,
    data: dict[str, Any] | None = None,
    save: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
    chat: ChatBackend | None = None,
    plan: bool = False,
    replay_rows: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Change], FixReport, Replacer | None]:
    """The fixed rows, the rows held for review, the change log and the report.

    With ``plan`` nothing is verified or generated: the report gives the counts a run would start from
    (rows with personal data by type, answer-only rows a teacher can rewrite, items each category needs).
    """
    progress = progress or NullProgress()
    state = data if data is not None else {}
    state.setdefault("cot", {})
    state.setdefault("augment", {})

    def checkpoint() -> None:
        if save is not None:
            save(state)

    report = FixReport(source="", planned=plan)
    changes: list[Change] = []
    review: list[dict[str, Any]] = []
    rep: Replacer | None = None
    if spec.pii:
        from imts.optimise.pii.engine import Replacer, find

        if plan:
            found = Counter[str]()
            for r in rows:
                texts: list[str] = []
                _texts({k: v for k, v in r.items() if k not in NOT_TEXT}, texts)
                spans = [s for t in texts for s in find(t)]
                found.update(s.entity for s in spans)
                report.pii_rows += bool(spans)
            report.pii = dict(found)
        else:
            rep = Replacer(secret)
            rows, pii_changes = replace_pii(rows, rep)
            changes += pii_changes
            report.pii, report.pii_rows = dict(rep.counts), len(pii_changes)
    if spec.cot:
        teacher: Teacher = ChatTeacher(chat) if chat is not None else EmbeddedTeacher()
        candidates = cot_candidates(rows, spec)
        if plan:
            results = {r["id"]: list(teacher.rationale(r)) for r in candidates}
        else:
            results = rewrite(candidates, teacher, state["cot"], checkpoint, should_stop, progress)
        rows, review_cot, cot_changes = _apply_rewrites(rows, candidates, results, spec, report)
        review += review_cot
        changes += cot_changes
    if spec.augment or spec.augment_lang:
        added, review_aug, aug_changes = _augment(rows, spec, state, checkpoint, plan, report, chat)
        rows = rows + added
        review += review_aug
        changes += aug_changes
    if spec.reinforce:
        added, aug_changes = _reinforce(rows, spec, state, checkpoint, plan, report)
        rows = rows + added
        changes += aug_changes
    if replay_rows:
        added, replay_changes = _replay(rows, replay_rows, report)
        rows = rows + added
        changes += replay_changes
    report.changes = len(changes)
    report.review = {"pending": len(review)} if review else {}
    return rows, review, changes, report, rep


def _apply_rewrites(
    rows: list[dict[str, Any]],
    candidates: list[dict[str, Any]],
    results: dict[str, list[Any]],
    spec: FixSpec,
    report: FixReport,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Change]]:
    per_cat: dict[str, CategoryCot] = {}
    for r in candidates:
        cat = per_cat.setdefault(r.get("category") or "", CategoryCot())
        cat.answer_only += 1
    new_rows, review, changes = [], [], []
    for row in rows:
        res = results.get(row["id"])
        if res is None:
            new_rows.append(row)
            continue
        text, why = res
        cat = per_cat[row.get("category") or ""]
        if text is None:
            report.not_rewritten.append({"row_id": row["id"], "reason": why})
            new_rows.append(row)
            continue
        cat.rewritten += 1
        fixed = with_response(row, text)
        if len(report.examples) < 6:
            report.examples.append({"row_id": row["id"], "before": assistant_text(row), "after": text})
        if not report.planned and in_review(spec.seed, row["id"], spec.review_share):
            review.append({"kind": "rewritten", "row": fixed, "original": row})
            new_rows.append(row)  # stays as it was until a reviewer accepts the rewrite
            continue
        changes.append(
            Change(row_id=row["id"], change="rewritten", why=f"chain of thought / 思维链改写: {why}")
        )
        new_rows.append(fixed)
    for cat in per_cat.values():
        cat.share = round(cat.rewritten / cat.answer_only, 4) if cat.answer_only else 0.0
    report.cot = per_cat
    return new_rows, review, changes


def _augment(
    rows: list[dict[str, Any]],
    spec: FixSpec,
    state: dict[str, Any],
    checkpoint: Callable[[], None],
    plan: bool,
    report: FixReport,
    chat: ChatBackend | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Change]]:
    """Each category, then each language (``lang:zh`` in the report), to its target share of the training
    rows; a language's shares are counted after the categories' new items."""
    train = [r for r in rows if not held_out(r)]
    has_split = any(r.get("split") for r in rows)
    guard = Guard(rows, [r for r in rows if held_out(r)])
    added, review, changes = [], [], []
    slices: list[tuple[str, float, str, str]] = [
        (c, s, "category", c) for c, s in sorted(spec.augment.items())
    ]
    slices += [(f"lang:{lang}", s, "lang", lang) for lang, s in sorted(spec.augment_lang.items())]
    for key, target, field, value in slices:
        total = len(train)
        inside = [r for r in train if (r.get(field) or "") == value]
        want = needed(len(inside), total, target)
        info = CategoryAugment(target=target, before=round(len(inside) / max(1, total), 4), wanted=want)
        report.augment[key] = info
        if plan or want == 0:
            info.after = info.before
            continue
        seeds = [r for r in inside if not is_answer_only(r)]
        links = chain_seeds(value, [r for r in train if not is_answer_only(r)]) if field == "category" else []
        saved = state["augment"].get(key)
        st = AugmentState(**saved) if saved else AugmentState()

        def save_state(s: AugmentState, k: str = key) -> None:
            state["augment"][k] = asdict(s)
            checkpoint()

        st = augment_category(
            key.replace(":", "-"), seeds, want, guard, spec.seed, st, save_state, chat, chain_seeds=links
        )
        info.accepted, info.tried, info.rejected = len(st.accepted), st.tried, dict(st.rejected)
        info.accept_rate = round(info.accepted / st.tried, 4) if st.tried else 0.0
        info.chained = sum(json.loads(item["meta"])["generator"] == "embedded-chain" for item in st.accepted)
        kept = 0
        for item in st.accepted:
            item = {**item, "split": "train"} if has_split else item
            if in_review(spec.seed, item["id"], spec.review_share):
                review.append({"kind": "generated", "row": item, "original": None})
                continue
            kept += 1
            added.append(item)
            train.append(item)
            why = (
                f"augment {key} to {target:.0%} (verified in the sandbox) / "
                f"扩充{key}至{target:.0%}（沙箱验证）"
            )
            changes.append(Change(row_id=item["id"], change="added", why=why))
        info.after = round((len(inside) + kept) / max(1, len(train)), 4)
    return added, review, changes


def _reinforce(
    rows: list[dict[str, Any]],
    spec: FixSpec,
    state: dict[str, Any],
    checkpoint: Callable[[], None],
    plan: bool,
    report: FixReport,
) -> tuple[list[dict[str, Any]], list[Change]]:
    """Verified variants of the rows named in ``spec.reinforce`` (the neighbours of items the model
    failed or regressed on): new values through the same program, checked in the sandbox, deduplicated
    and decontaminated like any augmentation."""
    wanted = set(spec.reinforce)
    seeds = [r for r in rows if r["id"] in wanted and not held_out(r) and not is_answer_only(r)]
    if plan or not seeds:
        return [], []
    has_split = any(r.get("split") for r in rows)
    guard = Guard(rows, [r for r in rows if held_out(r)])
    saved = state["augment"].get("__reinforce__")
    st = AugmentState(**saved) if saved else AugmentState()

    def save_state(s: AugmentState) -> None:
        state["augment"]["__reinforce__"] = asdict(s)
        checkpoint()

    st = augment_category(
        "reinforce", seeds, len(seeds) * spec.reinforce_per_seed, guard, spec.seed, st, save_state
    )
    added = [{**item, "split": "train"} if has_split else item for item in st.accepted]
    report.reinforced = len(added)
    why = "reinforce the neighbourhood of failed items (verified) / 强化失败条目的邻域（已验证）"
    return added, [Change(row_id=item["id"], change="added", why=why) for item in added]


def _replay(
    rows: list[dict[str, Any]], replay_rows: list[dict[str, Any]], report: FixReport
) -> tuple[list[dict[str, Any]], list[Change]]:
    """Rows of other versions mixed into the training split (against forgetting), under new ids so they
    never collide with this version's; a row already here (same text) is not added twice."""
    has_split = any(r.get("split") for r in rows)
    seen = {normalise(user_text(r)) for r in rows}
    added, changes = [], []
    why = "replay: general data mixed in against forgetting / 回放：混入通用数据以防遗忘"
    for r in replay_rows:
        key = normalise(user_text(r))
        if key in seen:
            continue
        seen.add(key)
        item = {k: v for k, v in r.items() if k != "split"} | {"id": f"replay-{r['id']}"}
        added.append({**item, "split": "train"} if has_split else item)
        changes.append(Change(row_id=item["id"], change="replayed", why=why))
    report.replayed = len(added)
    return added, changes


def mapping_blob(rep: Replacer, public_pem: str) -> bytes:
    """The PII mapping encrypted to an admin's RSA public key (hybrid: a fresh Fernet key, wrapped with
    RSA-OAEP); only the holder of the private key can read it back (:func:`open_mapping`)."""
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from imts.core.errors import InputError

    try:
        key = serialization.load_pem_public_key(public_pem.encode())
    except ValueError:
        raise InputError("the mapping key is not a PEM public key", field="mapping_public_key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise InputError("the mapping key must be an RSA public key (PEM)", field="mapping_public_key")
    fernet_key = Fernet.generate_key()
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    wrapped = key.encrypt(fernet_key, oaep)
    body = Fernet(fernet_key).encrypt(json.dumps(rep.mapping(), ensure_ascii=False).encode())
    return json.dumps({"key": wrapped.hex(), "body": body.decode()}).encode()


def open_mapping(blob: bytes, private_pem: bytes, password: bytes | None = None) -> list[dict[str, str]]:
    """The mapping (entity, original, surrogate) back from :func:`mapping_blob`'s output."""
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(private_pem, password)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("not an RSA private key")
    doc = json.loads(blob)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    fernet_key = key.decrypt(bytes.fromhex(doc["key"]), oaep)
    return list(json.loads(Fernet(fernet_key).decrypt(doc["body"].encode())))
