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
        model: str | None = typer.Option(
            None, "--model", help="Also serve this base model, model version, run id or folder (pinned)."
        ),
        host: str = typer.Option("127.0.0.1"),
        port: int = typer.Option(8000),
        name: str | None = typer.Option(None, help="Id clients use for --model (default: the reference)."),
        local: bool = typer.Option(
            False,
            "--local",
            help="One local user: serve this project's deployments without platform keys (IMTS_SERVE_API_KEY "
            "if set, else open; open only on a loopback host). Implied by --model.",
        ),
        tools: str = typer.Option(
            "",
            "--tools",
            help="Comma list of decoding tools for every request that names none (a request's "
            "'decoding_tools' overrides): calculator. Serve a model with the tools it was evaluated with.",
        ),
    ) -> None:
        """Serve the deployments (`imts deploy add`) over an OpenAI-compatible API: many models and LoRA
        adapters over shared bases, batched; /v1/models, /v1/chat/completions, /v1/usage, /health, /metrics.
        Clients present platform API keys (`imts keys create`) unless --local."""
        from imts.core.errors import InputError
        from imts.core.settings import get_settings
        from imts.inference.tools import parse
        from imts.registry.models import resolve
        from imts.serve.app import create_app, local_access
        from imts.serve.app import serve as run_server
        from imts.serve.router import KeyAccess

        use = tuple(parse(tools))  # before the model loads
        ctx = context()
        settings = get_settings()
        pinned = {}
        if model is not None:
            resolved = resolve(ctx, model)  # a LoRA version without merged/: its base + the adapter
            pinned[name or model] = (resolved.path, resolved.adapter)
            local = True
        key = settings.serve_api_key
        if local and key is None and host not in ("127.0.0.1", "localhost", "::1"):
            raise InputError(
                f"--local without IMTS_SERVE_API_KEY serves anyone who reaches {host}: listen on "
                "127.0.0.1 or set IMTS_SERVE_API_KEY",
                field="host",
            )
        access = local_access(ctx, key.get_secret_value() if key else None) if local else KeyAccess(ctx.ws)
        app = create_app(access, pinned, settings.serve_batch_window_ms, settings.serve_max_batch,
                         settings.serve_requests_per_minute, settings.serve_tokens_per_minute,
                         use)  # fmt: skip
        how = ("API key required" if key else "open, this machine only") if local else "platform API keys"
        served = ", ".join(pinned) or "the deployments"
        with_tools = f", decoding tools: {', '.join(use)}" if use else ""
        console.print(f"serving [bold]{served}[/] on http://{host}:{port}/v1 ({how}{with_tools})")
        run_server(app, host, port)

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
