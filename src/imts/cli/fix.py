"""`imts data fix` (plan / apply), `imts data review` (the review queue), `imts data pii-scan`,
`imts data pii-mapping`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from imts.cli.common import backend, console, context, friendly, print_json, progress, scope

review_app = typer.Typer(
    help="Review generated / rewritten rows held back by a data fix.", no_args_is_help=True
)


def _read(path: Path) -> bytes:
    from imts.core.errors import InputError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the key: {exc.strerror}", file=str(path)) from None


def _spec(ref: str, **kw: Any) -> Any:
    from imts.core.errors import InputError
    from imts.optimise.spec import FixSpec, read_findings

    shares: dict[str, dict[str, float]] = {"augment": {}, "augment_lang": {}}
    for name, what, example in (
        ("augment", "CATEGORY", "division=0.15"),
        ("augment_lang", "LANG", "zh=0.45"),
    ):
        flag = "--" + name.replace("_", "-")
        for item in kw.pop(name):
            key, sep, share = item.partition("=")
            try:
                shares[name][key.strip()] = float(share)
            except ValueError:
                raise InputError(f"{flag} wants {what}=SHARE like {example}, not {item!r}") from None
            if not sep or not key.strip():
                raise InputError(f"{flag} wants {what}=SHARE like {example}, not {item!r}")
    path: Path | None = kw.pop("findings")
    findings = read_findings(path) if path else []
    key_file: Path | None = kw.pop("mapping_key")
    key = _read(key_file).decode("utf-8", "replace") if key_file else None
    return FixSpec(data=ref, **shares, findings=findings, mapping_public_key=key, **kw)


def _render(report: Any) -> None:
    head = (
        "[bold]plan[/] (nothing written)"
        if report.planned
        else f"[green]fixed[/] into [bold]{report.version}[/]"
    )
    console.print(
        f"{head} from {report.source}; {report.changes} change(s)"
        + (" planned" if report.planned else " logged")
    )
    if report.pii:
        t = Table("personal data / 个人信息", "spans", title=f"PII in {report.pii_rows} row(s)")
        for k, n in sorted(report.pii.items()):
            t.add_row(k, str(n))
        console.print(t)
    if report.cot:
        t = Table(
            "category / 类别", "answer-only", "rewritten", "share", title="chain of thought / 思维链改写"
        )
        for k, c in sorted(report.cot.items()):
            t.add_row(k, str(c.answer_only), str(c.rewritten), f"{c.share:.0%}")
        console.print(t)
    if report.augment:
        t = Table("category, lang:LANG / 类别、语言", "share now", "target", "to add", "accepted", "chained",
                  "accept rate", "after", "rejected (reasons)", title="augmentation / 扩充")  # fmt: skip
        for k, a in sorted(report.augment.items()):
            why = "; ".join(f"{r} ×{n}" for r, n in a.rejected.items()) or "-"
            t.add_row(k, f"{a.before:.1%}", f"{a.target:.0%}", str(a.wanted), str(a.accepted), str(a.chained),
                      f"{a.accept_rate:.0%}", f"{a.after:.1%}", why)  # fmt: skip
        console.print(t)
    if report.not_rewritten:
        console.print(f"[yellow]{len(report.not_rewritten)} row(s) not rewritten[/] / 未改写:")
        for item in report.not_rewritten[:10]:
            console.print(f"  {item['row_id']}: {item['reason']}", highlight=False)
    for ex in report.examples[:3]:
        console.print(f"  [dim]{ex['row_id']}[/] {ex['before']!r} → {ex['after']!r}", highlight=False)
    if report.review.get("pending"):
        console.print(f"{report.review['pending']} row(s) held for review: imts data review list")
    if report.mapping:
        console.print(f"encrypted PII mapping / 加密映射: {report.mapping}")


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")

    @app.command("fix")
    @friendly
    def fix(
        ref: str = typer.Argument(..., help="Dataset version to fix."),
        apply: bool = typer.Option(False, "--apply/--plan", help="Do it (--apply) or show what it would do."),
        pii: bool = typer.Option(False, "--pii", help="Replace personal data with synthetic surrogates."),
        cot: bool = typer.Option(False, "--cot", help="Rewrite answer-only rows with verified rationales."),
        augment: list[str] = typer.Option([], help="CATEGORY=SHARE: augment to a target share (repeat)."),
        augment_lang: list[str] = typer.Option(
            [], help="LANG=SHARE: augment a language's rows to a target share, e.g. zh=0.45 (repeat)."
        ),
        findings: Path | None = typer.Option(None, help="JSON file of analysis findings to act on."),
        seed: int = typer.Option(0),
        review_share: float = typer.Option(0.0, help="Share of new / rewritten rows held for review."),
        teacher: str = typer.Option("embedded", help="embedded | openai | local."),
        teacher_url: str | None = typer.Option(None, help="OpenAI-compatible endpoint of the teacher."),
        teacher_model: str | None = typer.Option(None, help="Model at the endpoint, or a registry ref."),
        mapping_key: Path | None = typer.Option(None, help="RSA public key (PEM): keep the PII mapping."),
        into: str | None = typer.Option(None, help="Write into this (new) dataset."),
        inline: bool | None = typer.Option(
            None, "--inline/--job", help="Run here (default) or as a pool job (with --server: a job)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Repair a dataset: PII surrogates, chain-of-thought rewriting, verified augmentation."""
        spec = _spec(ref, pii=pii, cot=cot, augment=augment, augment_lang=augment_lang, findings=findings,
                     seed=seed, review_share=review_share, teacher=teacher, teacher_url=teacher_url,
                     teacher_model=teacher_model, mapping_key=mapping_key, into=into)  # fmt: skip
        b = backend()
        if not apply:
            report = b.plan_fix(*scope(), spec)
        else:
            report = b.fix_dataset(*scope(), spec, inline, progress=None if as_json else progress(),
                                   on_queued=lambda j: console.print(f"[dim]job {j} queued[/]"))  # fmt: skip
        if as_json:
            print_json(report.model_dump(mode="json"))
        else:
            _render(report)

    @app.command("pii-scan")
    @friendly
    def pii_scan(
        ref: str = typer.Argument(..., help="A version or split (name, name@N, name@N:split, id)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (every row id) instead of a table."),
    ) -> None:
        """Which rows hold personal data, of which kinds (never the values): every text a row holds,
        split over the pool's executor (Ray tasks when the pool runs on Ray)."""
        scan = backend().pii_scan(*scope(), ref, None if as_json else progress())
        if as_json:
            print_json(scan.model_dump(mode="json"))
            return
        where = f"on {scan.nodes} Ray node(s)" if scan.executor == "ray" else "in this process"
        console.print(
            f"{scan.version}: {scan.rows_with_pii} of {scan.rows} rows hold personal data ({where})"
        )
        t = Table("kind", "rows", "first rows")
        for kind, n in sorted(scan.by_kind.items(), key=lambda kv: -kv[1]):
            t.add_row(kind, str(n), ", ".join(scan.examples[kind][:5]))
        console.print(t)

    @app.command("pii-mapping")
    @friendly
    def pii_mapping(
        version: str = typer.Argument(..., help="The version a PII fix made."),
        private_key: Path = typer.Option(..., help="The admin's RSA private key (PEM)."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Decrypt a fix's PII mapping (original ↔ surrogate) with the admin's private key."""
        from imts.optimise import service

        rows = service.read_mapping(context(), version, _read(private_key))
        if as_json:
            print_json(rows)
            return
        t = Table("entity", "original", "surrogate")
        for r in rows:
            t.add_row(r["entity"], r["original"], r["surrogate"])
        console.print(t)


@review_app.command("list")
@friendly
def review_list(
    status: str = typer.Option("pending", help="pending | accepted | rejected | all."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rows held for review."""
    items = backend().list_reviews(*scope(), None if status == "all" else status)
    if as_json:
        print_json([i.model_dump(mode="json") for i in items])
        return
    t = Table("id", "row", "kind", "status", "question", "response")
    for i in items:
        t.add_row(i.id, i.row_id, i.kind, i.status, i.question[:60], i.response[:60])
    console.print(t)


@review_app.command("accept")
@friendly
def review_accept(item_ids: list[str] = typer.Argument(..., help="Review item ids.")) -> None:
    """Accept held rows: they enter the next `review commit`."""
    b = backend()
    for item_id in item_ids:
        console.print(f"[green]accepted[/] {b.decide_review(*scope(), item_id, True).row_id}")


@review_app.command("reject")
@friendly
def review_reject(
    item_ids: list[str] = typer.Argument(..., help="Review item ids."),
    reason: str = typer.Option("", help="Why (kept with the decision)."),
) -> None:
    """Reject held rows: they never enter a version."""
    b = backend()
    for item_id in item_ids:
        console.print(f"[red]rejected[/] {b.decide_review(*scope(), item_id, False, reason).row_id}")


@review_app.command("commit")
@friendly
def review_commit(fix_version: str = typer.Argument(..., help="The version the fix made.")) -> None:
    """A new version with the fix's accepted rows."""
    v = backend().commit_reviewed(*scope(), fix_version)
    console.print(f"[green]committed[/] {v.ref}: {json.dumps(v.report.get('review', {}))}")
