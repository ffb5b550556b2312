"""The `imts` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

from imts.cli import common, court, data, deploy, identity, jobs, loop, models, pool, runs, webhooks
from imts.cli import doctor as doctor_cli
from imts.cli import hpo as hpo_cli
from imts.cli import plan as plan_cli
from imts.cli import server as server_cli
from imts.cli.common import (
    REMOTE_VERBS,
    backend,
    console,
    context,
    err_console,
    friendly,
    progress,
    scope,
    server_url,
)

app = typer.Typer(
    help="IMTS: turn data and a goal into a better fine-tuned model (embedded: SQLite + local files). "
    "Settings come from IMTS_* environment variables (IMTS_WORKSPACE, IMTS_DATABASE_URL, ...).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")
app.add_typer(runs.app, name="runs")
app.add_typer(jobs.app, name="jobs")
app.add_typer(pool.app, name="pool")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(deploy.app, name="deploy")
app.add_typer(loop.app, name="loop")
app.command("scheduler")(friendly(pool.scheduler))
app.command("plan")(plan_cli.plan)
app.command("hpo")(hpo_cli.hpo)
app.command("doctor")(doctor_cli.doctor)
court.register(app)
identity.register(app)
app.command("server")(server_cli.server)
common.ROOT.append(app)  # a refusal names its command from this tree


@app.callback()
def _scope(
    tenant: str | None = typer.Option(
        None, "--tenant", help="Tenant to act in (default: IMTS_TENANT, else 'default').", show_default=False
    ),
    project: str | None = typer.Option(
        None,
        "--project",
        help="Project to act in (default: IMTS_PROJECT, else 'default').",
        show_default=False,
    ),
    server: str | None = typer.Option(
        None,
        "--server",
        help="Act on this IMTS server (http://host:8000) with IMTS_API_KEY instead of the local database "
        f"(default: IMTS_SERVER). Remote verbs: {REMOTE_VERBS}. Every other command acts only on this "
        "machine's workspace and refuses while a server is set.",
        show_default=False,
    ),
) -> None:
    """Every command acts in one tenant and project: their datasets, runs, jobs and models only."""
    from imts.cli import common

    common.SCOPE.update(tenant=tenant, project=project)
    common.REMOTE.update(server=server)


OVERRIDES_HELP = "Run-spec overrides KEY=VALUE (e.g. max_steps=200 lora.r=8 precision=fp32)."


JOB_OPTIONS_HELP = "Run inline in this process instead of as a job on the pool."


def _execute(
    b: Any,
    kind: str,
    spec: Any,
    result: type[Any],
    inline: bool,
    priority: str,
    cpus: int | None,
    workers: int = 1,
) -> Any:
    """Run ``kind`` here (``inline``) or as a job followed to its end (on the server with --server);
    its typed result.

    ``cpus`` is per worker; by default the workers share a whole node's cores, as an inline run would.
    """
    from imts.jobs.pool import Request

    job_ids: list[str] = []

    def queued(job_id: str) -> None:
        job_ids.append(job_id)
        console.print(f"[dim]job {job_id} queued (follow: imts jobs logs -f {job_id})[/]")

    def requeued(job_id: str, why: str) -> None:
        err_console.print(f"[yellow]job {job_id}: {why}; it is queued again and will resume[/]")

    try:
        return b.execute(
            *scope(),
            kind,
            spec,
            result=result,
            inline=inline,
            priority=priority,
            workers=workers,
            request=Request(cpus=cpus) if cpus else None,
            progress=progress(),
            on_queued=queued,
            on_requeued=requeued,
        )
    except KeyboardInterrupt:
        if not job_ids:
            raise
        job_id = job_ids[0]
        err_console.print(
            f"[yellow]stopped following; job {job_id} keeps running[/]\n"
            f"  follow it: imts jobs logs -f {job_id}\n  cancel it: imts jobs cancel {job_id}"
        )
        raise typer.Exit(130) from None


def _spec_keys(value: bool) -> None:
    """``--keys``: every run-spec key with its default and meaning, from the spec itself."""
    if not value:
        return
    from pydantic import BaseModel
    from rich.table import Table

    from imts.train.spec import RunSpec

    table = Table(title="Run-spec keys (KEY=VALUE overrides, or YAML)")
    table.add_column("key", no_wrap=True)
    table.add_column("default")
    table.add_column("meaning")

    def add(model: type[BaseModel], prefix: str) -> None:
        for key, f in model.model_fields.items():
            kind = f.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                add(kind, f"{prefix}{key}.")
                continue
            default = f.get_default(call_default_factory=True) if not f.is_required() else "(required)"
            table.add_row(f"{prefix}{key}", str(default), f.description or "")

    add(RunSpec, "")
    console.print(table)
    raise typer.Exit()


@app.command("train")
@friendly
def train(
    data_ref: str | None = typer.Option(
        None, "--data", help="Dataset reference; its 'train' split is used (required unless --resume)."
    ),
    base: str | None = typer.Option(
        None, "--base", help="Registered base model name (required unless --resume)."
    ),
    resume: str | None = typer.Option(
        None,
        "--resume",
        help="Continue the training run RUN (interrupted, failed or preempted) from its latest checkpoint, "
        "with the spec it started with: bit-identical to an uninterrupted run.",
        metavar="RUN",
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="Run spec YAML."),
    method: str | None = typer.Option(
        None,
        "--method",
        help="sft_lora (default; quantization=nf4 for QLoRA on CUDA) | sft_full | dpo (a preference "
        "dataset; dpo.beta=..., dpo.full=true).",
    ),
    nproc: int | None = typer.Option(
        None, "--nproc", help="Data-parallel processes (gloo on CPU, one GPU each with NCCL)."
    ),
    name: str | None = typer.Option(None, help="Model name to record the result under."),
    inline: bool = typer.Option(False, "--inline", help=JOB_OPTIONS_HELP),
    priority: str = typer.Option("normal", help="Job priority class: urgent | high | normal | low."),
    cpus: int | None = typer.Option(
        None, help="CPU slots per process (default: a whole node's, shared out between --nproc processes)."
    ),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    keys: bool = typer.Option(
        False,
        "--keys",
        is_eager=True,
        callback=_spec_keys,
        help="List every run-spec key with its default and meaning, then exit.",
    ),
) -> None:
    """Fine-tune a base model: LoRA, QLoRA, full or DPO (live loss, LR, grad-norm, tokens/s, MFU, ETA).

    Runs as a job on the resource pool and follows it; --inline trains in this process."""
    from imts.core.errors import InputError
    from imts.train.jobs import TrainJob, TrainResult
    from imts.train.spec import RunSpec, check_runnable

    if resume is not None:
        given = [
            o
            for o, v in (
                ("--data", data_ref),
                ("--base", base),
                ("--config", config),
                ("--method", method),
                ("--nproc", nproc),
                ("overrides", overrides),
            )
            if v
        ]
        if given:
            raise InputError(
                f"--resume continues a run with the spec it started with: drop {', '.join(given)}",
                field="resume",
            )
        from imts.train.service import check_resumable

        if common.server_url():
            raise InputError(
                "--resume continues a run of this machine's workspace: not with --server (IMTS_SERVER)",
                field="resume",
            )
        spec = check_resumable(context(), resume)
    else:
        if data_ref is None or base is None:
            raise InputError(
                "give --data and --base (or --resume RUN)", field="data" if data_ref is None else "base"
            )
        spec = RunSpec.from_sources(
            config, overrides, base_model=base, data=data_ref, method=method, nproc=nproc
        )
    b = backend()
    if resume is None and not common.server_url():
        check_runnable(spec)  # this machine's hardware: a server checks its own when the job starts
    job = TrainJob(run=spec, model_name=name, resume=resume)
    run_id = _execute(b, "train", job, TrainResult, inline, priority, cpus, workers=spec.nproc).run_id
    summary = b.get_run(*scope(), run_id).summary
    overall = summary.get("tokens_per_s_overall")
    console.print(
        f"[green]trained[/] run {run_id}: final loss {summary['final_loss']:.3f}, "
        f"{summary['tokens_per_s']:.0f} tokens/s while training"
        + (f" ({overall:.0f} over the whole run, loading and saving included)" if overall else "")
        + f" -> model [bold]{summary['model_version']}[/]"
    )


@app.command("eval")
@friendly
def eval_(
    model: str = typer.Option(
        ..., "--model", help="Base model name, model version (NAME[:N]), run id or folder."
    ),
    data_ref: str | None = typer.Option(None, "--data", help="Dataset reference; default split: test."),
    split: str | None = typer.Option(
        None,
        "--split",
        help="Split to evaluate where the reference names none: test (the default), val, train, or all "
        "(every row: the explicit choice a version without a test split needs).",
    ),
    max_new_tokens: int | None = typer.Option(
        None, help="Generation budget (default: 1.25 x the longest reference answer)."
    ),
    batch_size: int = typer.Option(32),
    limit: int | None = typer.Option(None, help="Evaluate at most N items, spread evenly over the set."),
    suite: Path | None = typer.Option(None, "--suite", help="Suite YAML (datasets, metrics, judges, ...)."),
    metrics: str = typer.Option(
        "exact_match", help="Comma list: exact_match, f1, bleu, rouge_l, distinct_2, perplexity."
    ),
    judges: str = typer.Option("", help="Comma list of judges on every answer: math, safety."),
    task: str | None = typer.Option(
        None,
        "--task",
        help="sft (numeric answers), classification, preference or text (free text, ROUGE-L); "
        "default: the dataset's format.",
    ),
    text_threshold: float | None = typer.Option(
        None, "--text-threshold", help="text task: the ROUGE-L at which an answer counts as correct."
    ),
    temperature: float = typer.Option(0.0, help="0: greedy; >0: sampled (seeded)."),
    seed: int = typer.Option(0, help="Sampling seed."),
    tools: str = typer.Option(
        "",
        "--tools",
        help="Comma list of decoding tools: calculator (the exact value after each arithmetic "
        "expression the model ends with '='). Compare models with the same tools.",
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Generate even what the cache holds."),
    inline: bool = typer.Option(False, "--inline", help=JOB_OPTIONS_HELP),
    priority: str = typer.Option("normal", help="Job priority class: urgent | high | normal | low."),
    cpus: int | None = typer.Option(None, help="CPU slots for the job (default: a whole node)."),
) -> None:
    """Evaluate a model on a dataset split (or a suite): batched generation, metrics, judges, cache.

    Runs as a job on the resource pool and follows it; --inline evaluates in this process."""
    from imts.evals.jobs import EvalJob, EvalResult
    from imts.evals.refs import with_split
    from imts.evals.suite import SuiteSpec

    tool_list = [t.strip() for t in tools.split(",") if t.strip()]
    if suite is not None:
        spec = SuiteSpec.from_yaml(suite)
        if data_ref:
            spec.datasets = [data_ref]
        if tool_list:  # --tools wins over the suite's
            spec = SuiteSpec.parse({**spec.model_dump(), "tools": tool_list})
    else:
        spec = SuiteSpec.parse(
            {
                "datasets": [data_ref] if data_ref else [],
                "metrics": [m.strip() for m in metrics.split(",") if m.strip()],
                "judges": [j.strip() for j in judges.split(",") if j.strip()],
                "max_new_tokens": max_new_tokens,
                "batch_size": batch_size,
                "max_items": limit,
                "sampling": {"temperature": temperature, "seed": seed},
                "tools": tool_list,
                "task": task,
                **({"text_threshold": text_threshold} if text_threshold is not None else {}),
            }
        )
    spec.cache = spec.cache and not no_cache
    spec.datasets = with_split(spec.datasets, split)
    b = backend()
    job = EvalJob(model=model, suite=spec)
    run_ids = _execute(b, "eval", job, EvalResult, inline, priority, cpus).run_ids
    for run_id in run_ids:
        run = b.get_run(*scope(), run_id)
        summary, data_name = run.summary, run.spec.get("data", "")
        cats = ", ".join(
            f"{k} {v['correct']}/{v['total']}" for k, v in summary["per_category"].items() if k != "all"
        )
        extra = ", ".join(f"{k} {v:.3g}" for k, v in summary["metrics"].items() if k != "exact_match")
        if summary.get("tools"):
            calls = summary.get("gen_tool_calls")
            extra += (
                ("; " if extra else "")
                + f"decoding tools {', '.join(summary['tools'])}"
                + (f" ({calls:.0f} values filled in)" if calls is not None else "")
            )
        console.print(
            f"[green]evaluated[/] run {run_id} on {data_name}: accuracy [bold]{summary['accuracy']:.1%}[/] "
            f"(n={summary['n']}, cached {summary['cache_hits']}); {cats}" + (f"; {extra}" if extra else "")
        )


@app.command("report")
@friendly
def report(
    run_id: str | None = typer.Argument(None, help="Training run id (omit to compare --evals only)."),
    baseline: str | None = typer.Option(None, help="Baseline eval run (default: newest of the base model)."),
    tuned: str | None = typer.Option(None, help="Tuned eval run (default: newest of the run's model)."),
    evals: list[str] = typer.Option(
        [], "--evals", "-e", help="Eval runs to compare (repeat; oldest first). With a run id: extra models."
    ),
    clusters: bool = typer.Option(True, help="Cluster the failed items (MiniLM embeddings)."),
    lang: Literal["en", "zh"] = typer.Option("en", "--lang", help="Language of the report: en or zh."),
    evaluate: bool = typer.Option(
        False,
        "--evaluate",
        help="First evaluate, in this process, the base model and the run's model where no evaluation "
        "of them on the run's dataset exists (a DPO run: preference accuracy on its pairs). Local only: "
        "with --server, run `imts eval` first.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder to put report.html/.md/.json in (default: the workspace's reports/RUN; with --server, "
        "RUN-LANG in the current folder).",
    ),
) -> None:
    """Comparison report: before/after a training run, or 2+ model versions; HTML (offline) + MD + JSON.
    With --server the server builds it and its files are downloaded here."""
    from imts.core.errors import InputError
    from imts.services.reports import ReportRequest

    if run_id is None and len(evals) < 2:
        raise InputError("give a training run id, or two or more --evals", field="evals")
    if evaluate and server_url():
        # No route evaluates what a report lacks: over the API an evaluation is a job of its own.
        raise InputError(
            "--evaluate evaluates in this process, on this machine's workspace; no route of the server "
            "does it for a report: with --server, evaluate first (`imts eval --model ... --data ...`, a job "
            "on the server's pool), then report without --evaluate",
            field="evaluate",
        )
    if evaluate and run_id is not None and (baseline is None or tuned is None):
        from imts.evals import compare

        for done in compare.evaluate_missing(context(), run_id, progress()):
            console.print(f"[green]evaluated[/] run {done}")
    req = ReportRequest(
        run_id=run_id, baseline=baseline, tuned=tuned, evals=evals, clusters=clusters, lang=lang
    )
    paths = backend().write_report(*scope(), req, out)
    console.print(paths["md"].read_text(encoding="utf-8"), markup=False, highlight=False)
    console.print(f"[green]report[/] {paths['html']}", highlight=False)


@app.command("demo")
@friendly
def demo(
    data_file: Path | None = typer.Option(
        None, "--data", help="Your own JSONL (one straight turn, --plain)."
    ),
    rows: int = typer.Option(3000, help="Example rows to generate."),
    seed: int = typer.Option(0),
    iterations: int = typer.Option(2, "--iterations", help="Training iterations of the loop."),
    eval_items: int = typer.Option(
        100,
        "--eval-items",
        help="Items of the validation and test splits and the probe (the "
        "out-of-template set is scored on every item).",
    ),
    plain: bool = typer.Option(False, "--plain", help="One straight turn instead of the loop."),
    lang: str = typer.Option("en", help="Report language: en | zh."),
    tools: str = typer.Option(
        "calculator",
        "--tools",
        help="Decoding tools of every evaluation, the base model's too (comma list; '' for none).",
    ),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """The closed loop on the example task: analyse, repair, split, baseline, then train -> evaluate ->
    feedback -> next data version, with the out-of-template set reported beside the test split."""
    from imts.evals.service import EvalSettings
    from imts.flywheel.demo import run_demo, run_loop_demo
    from imts.inference.tools import parse

    use = parse(tools)
    if plain or data_file is not None:
        settings = EvalSettings(tools=tuple(use))
        result = run_demo(context(), data_file, rows, seed, overrides, settings, progress())
        console.print(result.markdown, markup=False, highlight=False)
        gain = (result.tuned_accuracy - result.baseline_accuracy) * 100
        console.print(
            f"\n[bold]accuracy {result.baseline_accuracy:.1%} -> {result.tuned_accuracy:.1%} "
            f"({gain:+.1f} points)[/]  report: {result.report['html']}"
        )
        return
    looped = run_loop_demo(
        context(), rows, seed, overrides, iterations, eval_items, progress(), lang=lang, tools=use
    )
    console.print(looped.markdown, markup=False, highlight=False)
    console.print(
        f"\n[bold]loop {looped.loop_id} {looped.status}[/] ({looped.stop_reason})  "
        f"report: {looped.report['html']}"
    )
