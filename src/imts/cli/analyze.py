"""`imts data analyze` and `imts data analysis`: the dataset analysis agent's commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from imts.cli import common
from imts.cli.common import console, friendly, print_json, progress, scope
from imts.cli.court import BACKEND_HELP, _backend

if TYPE_CHECKING:
    from imts.analysis.pipeline import Analysis


def _print(a: Analysis, lang: str) -> None:
    zh = lang.startswith("zh")
    s = a.spec
    console.print(
        f"[bold]{a.version}[/]  analysis {a.id}  {'任务' if zh else 'task'}: {s.task_name(lang)}"
        f"  {'领域' if zh else 'domain'}: {s.domain or '-'}"
    )
    colour = {"fits": "green", "partial": "yellow", "refused": "red"}[a.fit.verdict]
    forced = " (--force)" if a.fit.forced else ""
    console.print(f"[{colour}]{a.fit.verdict}{forced}[/] {a.fit.reason_zh if zh else a.fit.reason_en}")
    if a.health:
        console.print(
            f"[bold]{'健康分' if zh else 'health'} {a.health.score:.0f}/100[/]  "
            + "  ".join(f"{x.name} {x.score:.0f}" for x in a.health.sub_scores)
        )
    table = Table("kind", "severity", "rows", "action", "message")
    for f in a.findings:
        table.add_row(f.kind.value, f.severity.value, str(len(f.row_ids)), f.action.value, f.message(lang))
    if a.findings:
        console.print(table)


def _save_reports(b: Any, ref: str, analysis_id: str, out: Path) -> None:
    """The analysis's reports (report.md, report.html, analysis.json) into ``out``, read locally or
    from the server alike."""
    out.mkdir(parents=True, exist_ok=True)
    for fmt, name in (("md", "report.md"), ("html", "report.html"), ("json", "analysis.json")):
        (out / name).write_text(b.analysis_report(*scope(), ref, fmt, analysis_id), encoding="utf-8")


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    @friendly
    def analyze_(
        ref: str = typer.Argument(..., help="Dataset reference: NAME, NAME@VERSION, NAME@VERSION:SPLIT."),
        intent: str = typer.Option(..., "--intent", "-i", help="What the model should learn, in any words."),
        lang: str | None = typer.Option(None, help="Report language: en | zh (default: the intent's)."),
        force: bool = typer.Option(
            False, "--force", help="Go on with data the fit check refuses (recorded)."
        ),
        sample: int = typer.Option(2000, help="Rows embedded for the semantic map (stratified)."),
        clusters: int | None = typer.Option(None, help="Clusters of the semantic map (default: by size)."),
        model: str = typer.Option("smollm2-135m-instruct", help="Base model whose tokenizer counts tokens."),
        context_len: int = typer.Option(2048, "--context", help="The model's context length (tokens)."),
        no_map: bool = typer.Option(False, "--no-map", help="Skip the semantic map (no embeddings)."),
        out: Path | None = typer.Option(None, help="Also copy report.md, report.html, analysis.json here."),
        backend: str = typer.Option("rules", help=BACKEND_HELP + " Refines the intent, names clusters."),
        backend_model: str | None = typer.Option(None, help="Model for the local/openai backend."),
        url: str | None = typer.Option(None, help="OpenAI-compatible base URL (…/v1)."),
        as_json: bool = typer.Option(False, "--json", help="Print the analysis summary as JSON."),
    ) -> None:
        """Analyse a dataset version for an intent: task spec, fit check (refuses off-intent data),
        profile, semantic map, typed findings and a health report stored with the version."""
        from imts.analysis.pipeline import AnalysisOptions

        opts = AnalysisOptions(
            sample=sample,
            clusters=clusters,
            model=model,
            context=context_len,
            force=force,
            semantic=not no_map,
        )
        if backend != "rules" and common.server_url():
            from imts.core.errors import InputError

            raise InputError(
                "--backend local/openai refines the intent on this machine: over the API the server "
                "analyses with the rules backend (leave out --backend)",
                field="backend",
            )
        chat = _backend(backend, backend_model, url) if backend != "rules" else None
        b = common.backend()
        a = b.analyze(*scope(), ref, intent, lang, opts, chat, None if as_json else progress())
        folder = b.analysis_location(*scope(), ref, a.id)
        if out:
            _save_reports(b, ref, a.id, out)
        if as_json:
            print_json(
                {
                    "id": a.id,
                    "version": a.version,
                    "verdict": a.fit.verdict,
                    "fit": a.fit.score,
                    "forced": a.fit.forced,
                    "health": a.health.score if a.health else None,
                    "findings": [
                        {
                            "kind": f.kind.value,
                            "severity": f.severity.value,
                            "rows": len(f.row_ids),
                            "action": f.action.value,
                        }
                        for f in a.findings
                    ],
                    "reports": str(out or folder),
                }
            )
            return
        _print(a, lang or a.lang)
        console.print(f"reports: {out or folder}")

    @app.command("analysis")
    @friendly
    def analysis_(
        ref: str = typer.Argument(..., help="Dataset reference."),
        analysis_id: str | None = typer.Option(None, "--id", help="This analysis (default: the latest)."),
        fmt: str | None = typer.Option(None, "--format", help="Print the report: md | html | json."),
        list_all: bool = typer.Option(False, "--list", help="List the version's analyses."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable list."),
    ) -> None:
        """Show a stored analysis of a version (or list them, or print a report)."""
        b = common.backend()
        if list_all:
            found = b.list_analyses(*scope(), ref)
            if as_json:
                print_json([x.model_dump(mode="json") for x in found])
                return
            table = Table("id", "verdict", "fit", "health", "forced", "task", "intent", "created")
            for x in found:
                table.add_row(
                    x.id,
                    x.verdict,
                    f"{x.fit_score:.2f}",
                    "-" if x.health_score is None else f"{x.health_score:.0f}",
                    str(x.forced),
                    x.task or "-",
                    x.intent[:40],
                    x.created_at.strftime("%Y-%m-%d %H:%M"),
                )
            console.print(table)
            return
        if fmt:
            console.file.write(b.analysis_report(*scope(), ref, fmt, analysis_id))
            return
        a = b.get_analysis(*scope(), ref, analysis_id)
        _print(a, a.lang)
