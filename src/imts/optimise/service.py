"""Data optimisation service: plan and run a fix, the project's surrogate secret, the review queue.

Every function takes the caller's ``Context`` (tenant, project, principal) and returns typed models; the
CLI, the API routes and the loop call these and nothing below them.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from imts.agents.chat import ChatBackend
from imts.core.errors import ConflictError, InputError, NotFoundError
from imts.core.ids import new_id
from imts.core.permissions import Permission
from imts.core.progress import Progress
from imts.data.versions import VersionInfo, commit_version, load_rows, resolve
from imts.optimise.apply import plan_or_apply
from imts.optimise.pii.scan import PiiScan
from imts.optimise.spec import FixReport, FixSpec
from imts.store import audit
from imts.store.context import Context
from imts.store.models import Dataset, DatasetVersion, ProjectSecret, ReviewItem

PII_PURPOSE = "pii-surrogates"


def pii_scan(ctx: Context, ref: str, progress: Progress | None = None) -> PiiScan:
    """Which rows of a version hold personal data, and of which kinds (never the values); split over
    the pool's executor (Ray tasks when the pool runs on Ray)."""
    from imts.optimise.pii.scan import scan_version

    ctx.require(Permission.DATASET_VIEW)
    return scan_version(ctx, ref, progress)


class ReviewView(BaseModel):
    id: str
    fix_version: str  # the version the fix made (id)
    row_id: str
    kind: str  # generated | rewritten
    status: str
    question: str
    response: str
    original_response: str | None = None
    reason: str = ""
    decided_by: str | None = None


class ReviewCommit(BaseModel):
    """A version made from a fix's accepted rows (``commit_reviewed``)."""

    version: str  # NAME@N
    version_id: str
    accepted: int  # the accepted rows it took
    created_at: datetime


class ReviewFix(BaseModel):
    """One fix's part of the review queue: its version, its items by status, the versions made from them."""

    fix_version: str  # the version the fix made (id, as in ``ReviewView``)
    version: str  # the same as NAME@N
    pending: int
    accepted: int
    rejected: int
    committed: list[ReviewCommit]  # oldest first


def mapping_key(version_id: str) -> str:
    """Artifact key of the encrypted PII mapping of the version a fix made."""
    return f"optimise/pii-mappings/{version_id}.json"


def project_secret(ctx: Context, purpose: str = PII_PURPOSE) -> bytes:
    """The project's secret for ``purpose``, made on first use (two racing makers keep the first)."""
    with ctx.session() as s:
        row = s.get(ProjectSecret, (ctx.project_id, purpose))
        if row is None:
            row = ProjectSecret(project_id=ctx.project_id, purpose=purpose, secret=secrets.token_hex(32))
            s.add(row)
            try:
                s.flush()
            except IntegrityError:  # another process made it first
                s.rollback()
                row = s.get(ProjectSecret, (ctx.project_id, purpose))
                assert row is not None
        return bytes.fromhex(row.secret)


def teacher_backend(ctx: Context, spec: FixSpec) -> ChatBackend | None:
    """The chat teacher the spec names, or None for the embedded one."""
    if spec.teacher == "embedded":
        return None
    from imts.agents.backends import make_backend

    if spec.teacher == "openai":
        key = ctx.settings.chat_api_key
        return make_backend(
            "openai",
            url=spec.teacher_url,
            model=spec.teacher_model,
            api_key=key.get_secret_value() if key else None,
        )
    if not spec.teacher_model:
        raise InputError("the local teacher needs a model (registry ref)", field="teacher_model")
    from imts.registry.models import resolve as resolve_model

    model = resolve_model(ctx, spec.teacher_model)
    return make_backend("local", model_path=model.path, adapter=model.adapter)


def plan_fix(ctx: Context, spec: FixSpec) -> FixReport:
    """What ``apply`` would do: counts per operation and examples; nothing is written."""
    ctx.require(Permission.DATASET_VIEW)
    spec = spec.resolved()
    source = resolve(ctx, spec.data).version
    rows = load_rows(ctx, source)
    _, _, _, report, _ = plan_or_apply(rows, spec, b"plan", plan=True, chat=teacher_backend(ctx, spec))
    report.source = source.ref
    return report


def made_by_job(ctx: Context, parent_id: str, job_id: str) -> VersionInfo | None:
    """The version a fix job already committed (an attempt killed after its commit), if any."""
    from imts.store.models import Dataset, DatasetVersion, VersionParent

    with ctx.session() as s:
        found = s.execute(
            select(DatasetVersion.id)
            .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
            .join(VersionParent, VersionParent.version_id == DatasetVersion.id)
            .where(VersionParent.parent_id == parent_id, DatasetVersion.operation == "fix")
        ).scalars()
        ids = list(found)
    for vid in ids:
        v = resolve(ctx, vid).version
        if v.params.get("job") == job_id:
            return v
    return None


def apply_fix(
    ctx: Context,
    spec: FixSpec,
    job_id: str,
    data: dict[str, Any] | None = None,
    save: Any = None,
    should_stop: Any = lambda: False,
    progress: Any = None,
) -> FixReport:
    """Run the fix and commit its version (the ``data_fix`` job's body; ``data``/``save`` are the job's
    resumable state)."""
    ctx.require(Permission.DATASET_UPLOAD)
    spec = spec.resolved()
    source = resolve(ctx, spec.data).version
    done = made_by_job(ctx, source.id, job_id)
    if done is not None:  # an earlier attempt committed it and died before it reported
        _queue(ctx, done)
        kept = FixReport.model_validate(done.report["summary"])
        mapping = mapping_key(done.id) if ctx.artifacts.exists(mapping_key(done.id)) else None
        return kept.model_copy(update={"version": done.ref, "version_id": done.id, "mapping": mapping})
    rows = load_rows(ctx, source)
    fixed, review, changes, report, rep = plan_or_apply(
        rows,
        spec,
        project_secret(ctx),
        data,
        save,
        should_stop,
        progress,
        teacher_backend(ctx, spec),
        replay_rows=replay_rows(ctx, spec.replay, source.format),
    )
    report.source = source.ref
    params = spec.model_dump(mode="json", exclude={"findings"}) | {
        "job": job_id,
        "findings": [f.kind for f in spec.findings],
    }
    summary = report.model_dump(mode="json")
    version = commit_version(
        ctx,
        spec.into or source.dataset,
        fixed,
        operation="fix",
        params=params,
        parents=[source.id],
        # The held rows go with the version: an attempt killed after the commit re-queues them from here.
        report={"summary": summary, "changes": [c.model_dump() for c in changes], "held": review},
        create=spec.into is not None,
        dataset_format=source.format,
        progress=progress,
    )
    report.version, report.version_id = version.ref, version.id
    if rep is not None and spec.mapping_public_key:
        from imts.optimise.apply import mapping_blob

        key = mapping_key(version.id)
        with ctx.artifacts.staging() as stage:
            tmp = stage / "mapping.json"
            tmp.write_bytes(mapping_blob(rep, spec.mapping_public_key))
            ctx.artifacts.commit(tmp, key)
        report.mapping = key
    _queue(ctx, version)
    return report


def replay_rows(ctx: Context, replay: dict[str, list[str]], dataset_format: str) -> list[dict[str, Any]]:
    """The rows a fix mixes in from other versions (only versions of the fixed one's format).

    Raises:
        InputError: a version of another format, or a row id it does not hold.
    """
    out: list[dict[str, Any]] = []
    for ref, ids in replay.items():
        version = resolve(ctx, ref).version
        if version.format != dataset_format:
            raise InputError(
                f"replay rows must be {dataset_format} rows; {version.ref} holds {version.format} rows",
                field="replay",
            )
        wanted = set(ids)
        found = [r for r in load_rows(ctx, version) if r["id"] in wanted]
        missing = wanted - {r["id"] for r in found}
        if missing:
            raise InputError(f"{version.ref} has no rows {', '.join(sorted(missing)[:5])}", field="replay")
        out += found
    return out


def _queue(ctx: Context, version: VersionInfo) -> None:
    """Put the rows the fix held back into the review queue (once: a second call adds nothing)."""
    with ctx.session() as s:
        if s.scalar(select(ReviewItem.id).where(ReviewItem.fix_id == version.id).limit(1)) is not None:
            return
        for item in version.report.get("held", []):
            s.add(
                ReviewItem(
                    id=new_id("rv"),
                    project_id=ctx.project_id,
                    fix_id=version.id,
                    row_id=item["row"]["id"],
                    kind=item["kind"],
                    row=item["row"],
                    original=item["original"],
                )
            )
        changes = len(version.report.get("changes", []))
        audit.record(ctx, s, "dataset.fix", ("dataset_version", version.id), None, {"changes": changes})


def _view(item: ReviewItem) -> ReviewView:
    def text(row: dict[str, Any] | None, role: str) -> str | None:
        if row is None:
            return None
        return next((m["content"] for m in row["messages"] if m["role"] == role), "")

    return ReviewView(
        id=item.id,
        fix_version=item.fix_id,
        row_id=item.row_id,
        kind=item.kind,
        status=item.status,
        question=text(item.row, "user") or "",
        response=text(item.row, "assistant") or "",
        original_response=text(item.original, "assistant"),
        reason=item.reason,
        decided_by=item.decided_by,
    )


def list_reviews(
    ctx: Context, status: str | None = "pending", limit: int = 200, fix: str | None = None
) -> list[ReviewView]:
    """This project's review queue (oldest first); ``status`` None: every status; ``fix``: only the
    rows held by the fix that made this version (a reference or an id).

    Raises:
        InputError: an unknown status (field ``status``).
        NotFoundError: ``fix`` names no version of this project.
    """
    ctx.require(Permission.DATASET_VIEW)
    if status not in (None, "pending", "accepted", "rejected"):
        raise InputError(f"unknown review status '{status}': pending, accepted or rejected", field="status")
    fix_id = resolve(ctx, fix).version.id if fix else None
    with ctx.session() as s:
        q = select(ReviewItem).where(ReviewItem.project_id == ctx.project_id)
        if status:
            q = q.where(ReviewItem.status == status)
        if fix_id:
            q = q.where(ReviewItem.fix_id == fix_id)
        return [_view(i) for i in s.scalars(q.order_by(ReviewItem.created_at, ReviewItem.id).limit(limit))]


def review_fixes(ctx: Context) -> list[ReviewFix]:
    """The fixes that held rows for review, newest first: each one's counts by status and the versions
    already committed from its accepted rows."""
    ctx.require(Permission.DATASET_VIEW)
    with ctx.session() as s:
        counts: dict[str, dict[str, int]] = {}
        by_status = (
            select(ReviewItem.fix_id, ReviewItem.status, func.count())
            .where(ReviewItem.project_id == ctx.project_id)
            .group_by(ReviewItem.fix_id, ReviewItem.status)
        )
        for fix_id, status, n in s.execute(by_status):
            counts.setdefault(fix_id, {})[status] = n
        if not counts:
            return []
        mine = select(DatasetVersion, Dataset.name).join(Dataset).where(Dataset.project_id == ctx.project_id)
        fixes = {v.id: (v, name) for v, name in s.execute(mine.where(DatasetVersion.id.in_(list(counts))))}
        made: dict[str, list[ReviewCommit]] = {}
        reviewed = mine.where(DatasetVersion.operation == "review").order_by(DatasetVersion.created_at)
        for v, name in s.execute(reviewed):
            base = v.params.get("fix_version")
            if base in counts:
                made.setdefault(base, []).append(
                    ReviewCommit(
                        version=f"{name}@{v.number}",
                        version_id=v.id,
                        accepted=int(v.params.get("accepted", 0)),
                        created_at=v.created_at,
                    )
                )

        def ref(fix_id: str) -> str:
            return f"{fixes[fix_id][1]}@{fixes[fix_id][0].number}" if fix_id in fixes else fix_id

        def made_at(fix_id: str) -> datetime:
            return fixes[fix_id][0].created_at if fix_id in fixes else datetime.min.replace(tzinfo=UTC)

        return [
            ReviewFix(
                fix_version=fix_id,
                version=ref(fix_id),
                pending=n.get("pending", 0),
                accepted=n.get("accepted", 0),
                rejected=n.get("rejected", 0),
                committed=made.get(fix_id, []),
            )
            for fix_id, n in sorted(counts.items(), key=lambda kv: (made_at(kv[0]), kv[0]), reverse=True)
        ]


def decide(ctx: Context, item_id: str, accept: bool, reason: str = "") -> ReviewView:
    """Accept or reject one held item; a decided item cannot be decided again."""
    ctx.require(Permission.DATASET_UPLOAD)
    with ctx.session() as s:
        item = s.get(ReviewItem, item_id)
        if item is None or item.project_id != ctx.project_id:
            raise NotFoundError(f"no review item '{item_id}'")
        if item.status != "pending":
            raise ConflictError(f"review item {item_id} is already {item.status}")
        item.status = "accepted" if accept else "rejected"
        item.reason, item.decided_by, item.decided_at = reason, ctx.principal, datetime.now(UTC)
        s.flush()
        audit.record(
            ctx, s, f"dataset.review.{item.status}", ("review_item", item.id), None, {"row": item.row_id}
        )
        return _view(item)


def commit_reviewed(ctx: Context, fix_version: str) -> VersionInfo:
    """A new version: the fix's version plus its accepted items (rejected and pending ones stay out)."""
    ctx.require(Permission.DATASET_UPLOAD)
    base = resolve(ctx, fix_version).version
    with ctx.session() as s:
        items = list(
            s.scalars(
                select(ReviewItem).where(
                    ReviewItem.project_id == ctx.project_id, ReviewItem.fix_id == base.id
                )
            )
        )
        accepted = [(i.kind, dict(i.row)) for i in items if i.status == "accepted"]
        counts = {st: sum(i.status == st for i in items) for st in ("pending", "accepted", "rejected")}
    if not accepted:
        raise InputError(f"no accepted review items for {base.ref} ({counts})")
    rewritten = {row["id"]: row for kind, row in accepted if kind == "rewritten"}
    rows = [rewritten.get(r["id"], r) for r in load_rows(ctx, base)]
    rows += [row for kind, row in accepted if kind == "generated"]
    return commit_version(
        ctx,
        base.dataset,
        rows,
        operation="review",
        params={"fix_version": base.id, **counts},
        parents=[base.id],
        report={"review": counts, "accepted": [r["id"] for _, r in accepted]},
        dataset_format=base.format,
    )


def read_mapping(ctx: Context, version: str, private_pem: bytes) -> list[dict[str, str]]:
    """The PII mapping a fix kept for ``version``, decrypted with the admin's private key."""
    from imts.optimise.apply import open_mapping

    ctx.require(Permission.DATASET_VIEW)
    v = resolve(ctx, version).version
    key = mapping_key(v.id)
    if not ctx.artifacts.exists(key):
        raise NotFoundError(f"{v.ref} kept no PII mapping (fix with --mapping-key to keep one)")
    from cryptography.fernet import InvalidToken

    try:
        return open_mapping(ctx.artifacts.path(key).read_bytes(), private_pem)
    except (ValueError, TypeError, InvalidToken) as exc:
        raise InputError(f"cannot open the mapping with this key: {exc}", field="private_key") from None
