"""The whole loop on a tiny randomly initialised Llama: what lands on disk and in the store."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.evals import compare
from imts.evals.service import EvalSettings, evaluate
from imts.registry import base_models, models
from imts.store.models import EvalItem, Metric, ModelVersion, Run, RunEvent
from imts.store.workspace import Workspace
from imts.train.service import train
from imts.train.spec import RunSpec


def test_whole_loop_on_tiny_model(ws: Workspace, tiny_model: Path, math_file: Path) -> None:
    base = base_models.add(ws, tiny_model, name="tiny")
    assert base.architecture == "LlamaForCausalLM" and base.num_params > 50_000 and len(base.checksum) == 64
    v = split_version(ws, import_file(ws, math_file, name="math"), seed=0)
    settings = EvalSettings(max_new_tokens=12, batch_size=16, max_items=24)
    baseline = evaluate(ws, "tiny", f"{v.ref}:test", settings)

    spec = RunSpec.from_sources(
        overrides=[
            "max_steps=12",
            "batch_size=4",
            "lr=0.01",
            "save_every=5",
            "eval_every=6",
            "warmup_steps=2",
            "val_max_items=16",
            "lora.r=4",
            "keep_checkpoints=true",  # what lands on disk is checked below
            "merge=true",
        ],
        base_model="tiny",
        data=v.ref,
    )
    run_id = train(ws, spec)
    tuned = evaluate(ws, run_id, f"{v.ref}:test", settings)
    report = compare.build(ws, run_id, baseline, tuned)  # limited evals: named, not found
    paths = compare.write(ws, run_id, report)

    # Files: checkpoints (keep_last=2) each with its run config, adapter, merged model, report.
    out = ws.artifacts.path(f"runs/{run_id}")
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["best", "step-000010", "step-000012"]  # keep_last=2, plus the best validation
    best_step = json.loads((out / "checkpoints" / "best" / "state.json").read_text())["step"]
    assert best_step in (6, 12)
    for c in ckpts:
        ck = out / "checkpoints" / c
        assert (ck / "adapter" / "adapter_model.safetensors").is_file() and (
            ck / "trainer_state.pt"
        ).is_file()
        assert (
            RunSpec.model_validate(__import__("yaml").safe_load((ck / "run_config.yaml").read_text())) == spec
        )
    assert json.loads((out / "checkpoints" / "step-000012" / "state.json").read_text())["step"] == 12
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "merged" / "model.safetensors").is_file() and (out / "merged" / "tokenizer.json").is_file()
    html = paths["html"].read_text(encoding="utf-8")
    assert "Plotly.newPlot" in html and "<script src=" not in html
    assert json.loads(paths["json"].read_text())["computed"]["n_items"] == 24

    # Store: metrics per step, events, per-item eval results, model version lineage.
    with ws.session() as s:
        loss = s.scalars(
            select(Metric.value).where(Metric.run_id == run_id, Metric.key == "loss").order_by(Metric.step)
        ).all()
        assert len(loss) == 12 and loss[-1] < loss[0]
        assert (
            s.scalar(
                select(func.count())
                .select_from(Metric)
                .where(Metric.run_id == run_id, Metric.key == "val_loss")
            )
            == 2
        )
        kinds = s.scalars(select(RunEvent.kind).where(RunEvent.run_id == run_id)).all()
        # steps 5 and 10 (save_every), 6 (first validation: an improvement, kept as best), 12 (end)
        assert kinds.count("checkpoint") == 4 and kinds[0] == "started" and kinds[-1] == "finished"
        assert s.scalar(select(func.count()).select_from(EvalItem).where(EvalItem.run_id == baseline)) == 24
        run = s.get(Run, run_id)
        assert run is not None and run.status == "succeeded"
        mv = s.get(ModelVersion, run.model_version_id)
        assert mv is not None
        assert (mv.base_model_id, mv.dataset_version_id, mv.train_run_id) == (base.id, v.id, run_id)
        assert mv.spec == spec.model_dump(mode="json")
        tuned_run = s.get(Run, tuned)
        assert tuned_run is not None and tuned_run.model_version_id == mv.id
    assert models.resolve(ws, f"{mv.name}:{mv.version}").path == out / "merged"
    assert report.baseline.items[0].item_id == report.tuned.items[0].item_id


def test_resume_continues_from_last_checkpoint(ws: Workspace, tiny_model: Path, math_file: Path) -> None:
    """A run directory with a checkpoint resumes there: the step count continues, nothing restarts."""
    from imts.data.versions import DataRef, load_rows
    from imts.train.recipes import sft_lora

    class Sink:
        def __init__(self) -> None:
            self.steps: list[int] = []
            self.events: list[str] = []

        def metrics(self, step: int, values: dict[str, float]) -> None:
            if "loss" in values:
                self.steps.append(step)

        def event(self, kind: str, message: str, step: int | None = None, data: dict | None = None) -> None:
            self.events.append(kind)

    v = split_version(ws, import_file(ws, math_file, name="m"), seed=0)
    rows = load_rows(ws, DataRef(v, "train"))
    spec = RunSpec.from_sources(
        overrides=["max_steps=4", "batch_size=2", "save_every=2", "merge=false"],
        base_model="tiny",
        data=v.ref,
    )
    out = ws.artifacts.path("runs/resume")
    out.mkdir(parents=True)
    first = Sink()
    sft_lora.run(spec, tiny_model, rows, [], out, first)
    longer = spec.model_copy(update={"max_steps": 6})
    second = Sink()
    sft_lora.run(longer, tiny_model, rows, [], out, second)
    assert first.steps == [1, 2, 3, 4] and second.steps == [5, 6]
    assert "resumed" in second.events


def test_demo_wiring_on_tiny_model(ws: Workspace, tiny_model: Path, math_file: Path) -> None:
    """`imts demo` is the same services in order; on the tiny model it produces every artifact."""
    from imts.flywheel.demo import run_demo

    base_models.add(ws, tiny_model, name="tiny")
    result = run_demo(
        ws,
        data_file=math_file,
        overrides=["max_steps=4", "batch_size=4", "save_every=2", "eval_every=2", "val_max_items=8"],
        eval_settings=EvalSettings(max_new_tokens=8, batch_size=16, max_items=12),
        base_model="tiny",
    )
    assert 0 <= result.baseline_accuracy <= 1 and 0 <= result.tuned_accuracy <= 1
    assert result.report["html"].is_file() and "| category | n | baseline | tuned |" in result.markdown
    with ws.session() as s:
        run = s.get(Run, result.train_run)
        assert (
            run is not None
            and run.spec["max_steps"] == 4
            and run.summary["report"] == str(result.report["html"])
        )
