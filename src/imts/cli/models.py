"""`imts models`: base models and trained model versions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from imts.cli.common import (
    JSON_HELP,
    backend,
    console,
    context,
    friendly,
    print_json,
    print_views,
    progress,
    scope,
    table,
)

app = typer.Typer(help="Base models (pull, add) and trained model versions.", no_args_is_help=True)


@app.command("pull")
@friendly
def pull(name: str = typer.Argument(..., help="Catalogued model, e.g. smollm2-135m-instruct.")) -> None:
    """Obtain a catalogued base model, convert it once to safetensors, verify and record it (with
    --server: into the server's cache, by a platform administrator)."""
    rec = backend().pull_base_model(name, progress())
    console.print(
        f"[green]ready[/] {rec.name}: {rec.architecture}, {rec.num_params:,} parameters, "
        f"context {rec.context_length}, licence {rec.license}\n  {rec.path}\n  source {rec.source}\n"
        f"  sha256 {rec.checksum}"
    )


@app.command("add")
@friendly
def add(
    path: Path = typer.Argument(..., help="Local Hugging Face model folder."),
    name: str | None = typer.Option(None, help="Name to register it under (default: folder name)."),
    license: str | None = typer.Option(None, help="Licence of the weights."),
) -> None:
    """Register a local Hugging Face model folder as a base model (checked to load and generate)."""
    from imts.registry import service

    rec = service.add_base_model(context(), path, name, license)
    console.print(f"[green]registered[/] {rec.name}: {rec.architecture}, {rec.num_params:,} parameters")


@app.command("list")
@friendly
def list_models(
    archived: bool = typer.Option(False, "--archived", help="Also list archived versions."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Base models and trained model versions (with their aliases and tags)."""
    b = backend()
    bases = b.list_base_models()
    versions = b.list_model_versions(*scope(), archived)
    if as_json:
        print_views({"base_models": bases, "model_versions": versions})
        return
    rows = [
        (
            b.name,
            b.architecture,
            f"{b.num_params / 1e6:.1f}M",
            str(b.context_length),
            b.license or "",
            b.source,
        )
        for b in bases
    ]
    columns = ("name", "architecture", "params", "context", "licence", "source")
    console.print(table(columns, rows, ids={"name"}, title="base models"))
    rows = [
        (
            m.label + (" (archived)" if m.archived_at else ""),
            m.id,
            ", ".join(m.aliases),
            ", ".join(m.tags),
            m.train_run_id or "",
            f"loss {m.metrics.get('final_loss', float('nan')):.3f}",
            m.merged_path or m.adapter_path or "",
        )
        for m in versions
    ]
    columns = ("model", "id", "aliases", "tags", "training run", "metrics", "weights")
    console.print(table(columns, rows, ids={"id", "training run"}, title="trained model versions"))


@app.command("show")
@friendly
def show(version: str = typer.Argument(..., help="NAME, NAME:N, NAME@ALIAS, mv_... or run_...")) -> None:
    """One model version as JSON: lineage, spec, metrics, aliases, tags."""
    print_json(backend().show_model(*scope(), version).model_dump(mode="json"))


@app.command("alias")
@friendly
def alias(
    version: str = typer.Argument(..., help="The version the alias should point to (NAME:N, mv_...)."),
    name: str = typer.Argument(..., help="Alias: production, staging, champion or any name."),
) -> None:
    """Point an alias of the model at VERSION, moving it from where it was (history is kept)."""
    a = backend().set_alias(*scope(), version, name)
    console.print(f"[green]{a.model}@{a.alias}[/] -> {a.label} (alias change #{a.set_seq})")


@app.command("unalias")
@friendly
def unalias(
    model: str = typer.Argument(..., help="Model name (or any reference to one of its versions)."),
    name: str = typer.Argument(..., help="The alias to remove."),
) -> None:
    """Remove an alias (its history stays)."""
    a = backend().remove_alias(*scope(), model, name)
    console.print(f"removed {a.model}@{a.alias} (was {a.label})")


@app.command("alias-history")
@friendly
def alias_history(
    model: str = typer.Argument(..., help="Model name (or any reference to one of its versions)."),
    name: str | None = typer.Option(None, "--alias", help="Only this alias."),
    at: datetime | None = typer.Option(
        None,
        "--at",
        help="What each alias pointed to at this time (ISO 8601; UTC unless it says).",
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"],
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the spans as JSON."),
) -> None:
    """Which version each alias pointed to, when, and who moved it."""
    spans = backend().alias_history(*scope(), model, name, at)
    if as_json:
        print_json([h.model_dump(mode="json") for h in spans])
        return
    if not spans:
        console.print("no alias" + (f" at {at}" if at else ""))
        return
    t = Table()
    for col in ("alias", "version", "set at", "set by", "until", "moved by"):
        t.add_column(col)
    for h in spans:
        t.add_row(
            h.alias + (" (protected)" if h.protected else ""), h.label, f"{h.set_at:%Y-%m-%d %H:%M:%S}",
            h.set_by, f"{h.unset_at:%Y-%m-%d %H:%M:%S}" if h.unset_at else "now", h.unset_by or "",
        )  # fmt: skip
    console.print(t)


@app.command("protect")
@friendly
def protect(
    model: str = typer.Argument(..., help="Model name."),
    name: str = typer.Argument(..., help="The alias to protect."),
    role: str = typer.Option("admin", "--role", help="The lowest role that may move it."),
    lift: bool = typer.Option(False, "--lift", help="Lift the protection instead."),
) -> None:
    """Protect an alias: only ROLE or higher (holding the deploy permission) moves it."""
    b = backend()
    if lift:
        lifted = b.unprotect_alias(*scope(), model, name)
        console.print(f"{lifted.model}@{name} is no longer protected")
        return
    p = b.protect_alias(*scope(), model, name, role)
    console.print(f"[green]protected[/] {p.model}@{p.alias}: role {p.min_role} or higher moves it")


@app.command("tag")
@friendly
def tag(
    version: str = typer.Argument(..., help="NAME:N, NAME@ALIAS, mv_..."),
    tags: list[str] = typer.Argument(None, help="Tags to add."),
    remove: list[str] = typer.Option([], "--remove", help="A tag to remove (repeatable)."),
) -> None:
    """Add (and --remove) tags of a version."""
    m = backend().tag_model(*scope(), version, list(tags or []), list(remove))
    console.print(f"{m.label}: tags {', '.join(m.tags) or '(none)'}")


@app.command("archive")
@friendly
def archive(
    version: str = typer.Argument(..., help="NAME:N or mv_..."),
    undo: bool = typer.Option(False, "--undo", help="Bring an archived version back."),
) -> None:
    """Archive a version: hidden from `models list`, never aliased (refused while aliased)."""
    m = backend().archive_model(*scope(), version, not undo)
    console.print(f"{m.label} {'archived' if m.archived_at else 'restored'}")


@app.command("delete")
@friendly
def delete(
    version: str = typer.Argument(..., help="NAME:N or mv_..."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Delete a version and its weights; refused while an alias, deployment or lineage child needs it."""
    b = backend()
    m = b.show_model(*scope(), version)
    if not yes and not typer.confirm(f"delete {m.label} and its weights?"):
        raise typer.Exit(1)
    b.delete_model(*scope(), m.id)
    console.print(f"deleted {m.label}")


@app.command("export")
@friendly
def export(
    version: str = typer.Argument(..., help="NAME:N, NAME@ALIAS, mv_..."),
    fmt: str = typer.Option(..., "--format", help="adapter | merged | gguf"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Destination folder (default: exports/NAME-N/FORMAT in the workspace; with --server, the "
        "server's, and --out downloads the files here).",
    ),
    gguf_type: str = typer.Option("f32", "--gguf-type", help="GGUF tensor type: f32 or f16."),
) -> None:
    """Export a version and check it by loading it back: logits (adapter, merged) or tensors and a
    greedy decode (GGUF) against the source."""
    r = backend().export_model(*scope(), version, fmt, out, gguf_type)
    c = r.check
    checked = (
        f"logits within {c.max_logit_diff:.2g} of the source"
        if c.max_logit_diff is not None
        else f"{c.tensors} tensors within {c.max_tensor_diff:.2g}, greedy decode equal ({c.decoded!r})"
    )
    size = f"{r.bytes / 1e6:.1f} MB"
    console.print(f"[green]exported[/] {r.version} as {r.format}: {r.path} ({size})\n  {checked}")


@app.command("compare")
@friendly
def compare(
    a: str = typer.Argument(..., help="The reference version (NAME:N, NAME@ALIAS, mv_...)."),
    b: str = typer.Argument(..., help="The version compared with it."),
    lang: str = typer.Option("en", "--lang", help="Verdict and report language: en or zh."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Two versions side by side: spec diff, data version diff, evaluations, and a verdict with its
    significance (the comparison report is written too)."""
    from imts.core.errors import InputError

    if lang not in ("en", "zh"):
        raise InputError(f"unknown report language {lang!r}: en or zh", field="lang")
    cmp = backend().compare_models(*scope(), a, b, lang)
    if as_json:
        print_json(cmp.model_dump(mode="json", by_alias=True))
        return
    t = Table(title=f"{cmp.a.label} vs {cmp.b.label}")
    for col in ("", cmp.a.label, cmp.b.label):
        t.add_column(col)
    for key, (va, vb) in cmp.spec.items():
        t.add_row(key, str(va), str(vb))
    t.add_row("data", cmp.a.dataset_version_id, cmp.b.dataset_version_id)
    for p in cmp.evaluations:
        t.add_section()
        t.add_row(f"accuracy on {p.data} (n={p.n})", f"{p.accuracy_a:.1%}", f"{p.accuracy_b:.1%}")
        for cat, (ca, cb) in p.per_category.items():
            t.add_row(f"  {cat}", "-" if ca is None else f"{ca:.1%}", "-" if cb is None else f"{cb:.1%}")
    console.print(t)
    if cmp.data is not None:
        r = cmp.data.rows
        console.print(f"data: +{r.added} -{r.removed} ~{r.changed} rows ({cmp.data.a} -> {cmp.data.b})")
    verdict = cmp.verdict_zh if lang == "zh" else cmp.verdict
    console.print(("[green]" if cmp.significant else "[yellow]") + verdict, highlight=False)
    if cmp.report:
        console.print(f"report: {cmp.report['html']}")


@app.command("card")
@friendly
def card(
    version: str = typer.Argument(..., help="NAME:N, NAME@ALIAS, mv_..."),
    show_text: bool = typer.Option(False, "--print", help="Print the card."),
) -> None:
    """Generate the version's model card (Hugging Face format, English and Chinese) as README.md beside
    its weights."""
    c = backend().model_card(*scope(), version)
    if show_text:
        console.print(c.text, markup=False, highlight=False)
    else:
        console.print(f"model card of {c.version}: {c.path}")
