"""One turn of the loop on the example task: the spine that the closed-loop flywheel repeats.

data -> import -> split (decontaminated) -> personal data replaced -> baseline eval -> LoRA SFT -> eval
-> comparison report.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from imts.core.errors import ImtsError, InputError
from imts.core.progress import NullProgress, Progress
from imts.data import service as data
from imts.evals import compare
from imts.evals.service import EvalSettings, evaluate
from imts.registry import base_models
from imts.registry import service as registry
from imts.store.context import Context
from imts.train.service import train
from imts.train.spec import RunSpec

BASE_MODEL = "smollm2-135m-instruct"
DATASET = "math-demo"
# Measured on a 2-core AVX2 CPU: 50 steps lift test accuracy from 3% to 25%; 80 leave margin and keep
# the whole demo near 10 minutes. User overrides (`imts demo max_steps=...`) come after and win.
DEMO_OVERRIDES = ["max_steps=80", "save_every=40", "eval_every=40"]


@dataclass(frozen=True)
class DemoResult:
    train_run: str
    baseline_eval: str
    tuned_eval: str
    baseline_accuracy: float
    tuned_accuracy: float
    report: dict[str, Path]
    markdown: str


def example_generator() -> ModuleType:
    """The example task's generator, ``examples/mathgen.py`` in the repository."""
    candidates = [
        Path(__file__).resolve().parents[3] / "examples" / "mathgen.py",
        Path.cwd() / "examples" / "mathgen.py",
    ]
    for path in candidates:
        if path.is_file():
            spec = importlib.util.spec_from_file_location("imts_example_mathgen", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise ImtsError(
        "examples/mathgen.py not found: run the demo from the repository root, or pass --data FILE"
    )


def run_demo(
    ctx: Context,
    data_file: Path | None = None,
    rows: int = 3000,
    seed: int = 0,
    overrides: list[str] | None = None,
    eval_settings: EvalSettings | None = None,
    progress: Progress | None = None,
    base_model: str = BASE_MODEL,
) -> DemoResult:
    progress = progress or NullProgress()
    from imts.evals.report import render_markdown

    if data_file is not None and not Path(data_file).is_file():  # before minutes of model loading
        raise InputError("no such file", file=str(data_file))
    progress.log(f"[bold]1/7 base model[/] {base_model}")
    if base_model in base_models.CATALOGUE:
        registry.pull_base_model(ctx, base_model, progress)

    progress.log("[bold]2/7 data[/]")
    if data_file is None:
        gen = example_generator()
        data_file = ctx.settings.workspace / "examples" / f"math-{rows}-seed{seed}.jsonl"
        data_file.parent.mkdir(parents=True, exist_ok=True)
        gen.main(["--n", str(rows), "--seed", str(seed), "--out", str(data_file)])
    imported = data.import_file(ctx, data_file, DATASET, progress=progress)
    progress.log(f"imported {imported.num_rows} rows as {imported.ref}")

    progress.log("[bold]3/7 split + decontamination + personal data replaced[/]")
    split = data.split_version(ctx, imported.ref, seed=seed, progress=progress)
    # The model is never trained (or evaluated) on the example data's names, phones and e-mails: they
    # become consistent synthetic surrogates in every split (imts.optimise, a `data fix --pii`).
    from imts.core.ids import new_id
    from imts.optimise.service import apply_fix
    from imts.optimise.spec import FixSpec

    fixed = apply_fix(ctx, FixSpec(data=split.ref, pii=True), new_id("job"), progress=progress)
    progress.log(f"personal data replaced in {fixed.pii_rows} rows: {fixed.version}")
    split = data.resolve(ctx, fixed.version or split.ref).version

    progress.log("[bold]4/7 baseline evaluation[/]")
    eval_settings = eval_settings or EvalSettings()
    baseline = evaluate(ctx, base_model, f"{split.ref}:test", eval_settings, progress)

    progress.log("[bold]5/7 LoRA fine-tuning[/]")
    spec = RunSpec.from_sources(
        overrides=[*DEMO_OVERRIDES, *(overrides or [])], base_model=base_model, data=split.ref, seed=seed
    )
    run_id = train(ctx, spec, progress)

    progress.log("[bold]6/7 evaluation of the tuned model[/]")
    tuned = evaluate(ctx, run_id, f"{split.ref}:test", eval_settings, progress)

    progress.log("[bold]7/7 comparison report[/]")
    report = compare.build(ctx, run_id, baseline, tuned)
    paths = compare.write(ctx, run_id, report)
    from imts.evals.report import accuracy_by_category

    before, after = accuracy_by_category(report.baseline)["all"], accuracy_by_category(report.tuned)["all"]
    return DemoResult(
        train_run=run_id,
        baseline_eval=baseline,
        tuned_eval=tuned,
        baseline_accuracy=before[0] / before[1],
        tuned_accuracy=after[0] / after[1],
        report=paths,
        markdown=render_markdown(report),
    )


DEMO_INTENT = (
    "Teach the model to solve grade-school math word problems in English and Chinese, "
    "showing each step and ending with the answer"
)
HELDOUT = "math-oot"


def example_file(*parts: str) -> Path | None:
    """A file under the repository's ``examples/`` (None when IMTS runs outside the repository)."""
    for root in (Path(__file__).resolve().parents[3], Path.cwd()):
        path = root.joinpath("examples", *parts)
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class LoopDemoResult:
    loop_id: str
    status: str
    stop_reason: str | None
    markdown: str
    report: dict[str, Path]


def run_loop_demo(
    ctx: Context,
    rows: int = 3000,
    seed: int = 0,
    overrides: list[str] | None = None,
    max_iterations: int = 2,
    eval_items: int | None = 100,
    progress: Progress | None = None,
    base_model: str = BASE_MODEL,
    lang: str = "en",
    tools: list[str] | None = None,
) -> LoopDemoResult:
    """The closed loop on the example task: the generated data, the hand-written out-of-template set
    (``examples/heldout/math_oot.jsonl``) reported beside the test split, ``max_iterations`` trainings;
    ``tools``: the decoding tools of every evaluation (None: the loop's default, the calculator)."""
    from imts.flywheel import report
    from imts.flywheel import service as loops
    from imts.flywheel.spec import LoopSpec

    progress = progress or NullProgress()
    progress.log(f"[bold]base model[/] {base_model}")
    if base_model in base_models.CATALOGUE:
        registry.pull_base_model(ctx, base_model, progress)
    gen = example_generator()
    data_file = ctx.settings.workspace / "examples" / f"math-{rows}-seed{seed}.jsonl"
    data_file.parent.mkdir(parents=True, exist_ok=True)
    gen.main(["--n", str(rows), "--seed", str(seed), "--out", str(data_file)])
    imported = data.import_file(ctx, data_file, DATASET, progress=progress)
    progress.log(f"imported {imported.num_rows} rows as {imported.ref}")
    heldout = []
    oot = example_file("heldout", "math_oot.jsonl")
    if oot is not None:
        heldout.append(data.import_file(ctx, oot, HELDOUT, progress=progress).ref)
    spec = LoopSpec(
        intent=DEMO_INTENT, data=imported.ref, name="demo", base_model=base_model, heldout=heldout,
        max_iterations=max_iterations, eval_items=eval_items, seed=seed,
        train=[*DEMO_OVERRIDES, *(overrides or [])],
        **({"tools": tools} if tools is not None else {}),
    )  # fmt: skip
    view = loops.start(ctx, spec)
    progress.log(f"[bold]loop[/] {view.id}")
    view = loops.follow(ctx, view.id, progress)
    its = loops.iterations(ctx, view.id)
    paths = report.write(ctx, view, its, lang)
    if view.status == "failed":
        raise ImtsError(f"loop {view.id} failed: {view.error}")
    return LoopDemoResult(view.id, view.status, view.stop_reason, report.markdown(view, its, lang), paths)
