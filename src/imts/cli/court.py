"""`imts redteam`, `imts serve` and `imts judge`: the evaluation court's commands."""

from __future__ import annotations

from pathlib import Path

import typer

from imts.cli.common import console, context, friendly, progress

BACKEND_HELP = (
    "Chat backend: rules (no model), local (--backend-model), openai (--url, key in IMTS_CHAT_API_KEY)."
)


def _backend(name: str, model: str | None, url: str | None):  # type: ignore[no-untyped-def]
    from imts.agents.backends import make_backend
    from imts.core.settings import get_settings

    path = adapter = None
    if name == "local" and model:
        from imts.registry.models import resolve

        resolved = resolve(context(), model)
        path, adapter = resolved.path, resolved.adapter
    key = get_settings().chat_api_key
    return make_backend(
        name,
        model_path=path,
        adapter=adapter,
        url=url,
        model=model,
        api_key=key.get_secret_value() if key else None,
    )


def register(app: typer.Typer) -> None:
    @app.command("redteam")
    @friendly
    def redteam(
        data_ref: str = typer.Argument(..., help="Dataset reference; its 'test' split by default."),
        name: str | None = typer.Option(None, help="Dataset to write (default: <dataset>-hard)."),
        seed: int = typer.Option(0),
        backend: str = typer.Option("rules", help=BACKEND_HELP),
        backend_model: str | None = typer.Option(None, help="Model for the local/openai backend."),
        url: str | None = typer.Option(None, help="OpenAI-compatible base URL (…/v1)."),
    ) -> None:
        """Perturb a test split into a hard-mode dataset version (numbers, names, distractors, rewording)."""
        from imts.agents.redteam import red_team

        ctx = context()
        v = red_team(ctx, data_ref, name, _backend(backend, backend_model, url), seed, progress())
        applied = ", ".join(f"{k} {n}" for k, n in v.report["applied"].items())
        console.print(f"[green]red-teamed[/] {data_ref} -> [bold]{v.ref}[/] ({v.num_rows} rows: {applied})")

    @app.command("serve")
    @friendly
    def serve(
        model: str = typer.Option(..., "--model", help="Base model name, model version, run id or folder."),
        host: str = typer.Option("127.0.0.1"),
        port: int = typer.Option(8000),
        name: str | None = typer.Option(None, help="Model id clients use (default: the model's label)."),
    ) -> None:
        """Serve a model over an OpenAI-compatible API (/v1/models, /v1/chat/completions, streaming)."""
        from imts.core.settings import get_settings
        from imts.registry.models import resolve
        from imts.serve.app import serve as run_server

        resolved = resolve(context(), model)
        key = get_settings().serve_api_key
        served = name or model
        console.print(
            f"serving [bold]{served}[/] on http://{host}:{port}/v1" + (" (API key required)" if key else "")
        )
        secret = key.get_secret_value() if key else None
        run_server(resolved.path, served, host, port, secret, adapter=resolved.adapter)

    @app.command("judge")
    @friendly
    def judge(
        eval_run: str = typer.Argument(..., help="Eval run whose answers to judge."),
        mode: str = typer.Option("cascade", help="cascade | debate | math | safety | logic"),
        backend: str = typer.Option("rules", help=BACKEND_HELP),
        backend_model: str | None = typer.Option(None, help="Model for the local/openai backend."),
        url: str | None = typer.Option(None, help="OpenAI-compatible base URL (…/v1)."),
        out: Path | None = typer.Option(None, help="Write the judgements as JSONL here."),
    ) -> None:
        """Judge an eval run's answers: math (sandboxed steps), safety, logic, the debate, or the cascade."""
        from imts.evals.judging import judge_run

        ctx = context()
        summary = judge_run(ctx, eval_run, mode, _backend(backend, backend_model, url), out)
        console.print(f"[green]judged[/] {eval_run} ({mode}): {summary}")
