"""Exact resume after SIGKILL, watchdog recovery from injected faults, early stopping (tiny model)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from imts.train import loop
from imts.train.recipes import sft_lora
from imts.train.spec import RunSpec

DRIVER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from imts.train.recipes import RECIPES
    from imts.train.spec import RunSpec

    spec = RunSpec.model_validate_json(Path(sys.argv[1]).read_text())
    rows = json.loads(Path(sys.argv[2]).read_text())
    out, log = Path(sys.argv[3]), Path(sys.argv[4])

    class Sink:
        def metrics(self, step, values):
            if "loss" in values:
                with log.open("a") as f:
                    f.write(json.dumps({"step": step, "loss": values["loss"]}) + "\\n")
        def event(self, kind, message, step=None, data=None):
            pass

    RECIPES[spec.method](spec, Path(sys.argv[5]), rows, [], out, Sink())
    """
)


class ListSink:
    def __init__(self) -> None:
        self.loss: dict[int, float] = {}
        self.val: dict[int, float] = {}
        self.events: list[tuple[str, str, int | None]] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "loss" in values:
            self.loss[step] = values["loss"]
        if "val_loss" in values:
            self.val[step] = values["val_loss"]

    def event(
        self, kind: str, message: str, step: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.events.append((kind, message, step))


def _rows(mathgen: Any, n: int = 240) -> list[dict[str, Any]]:
    rows, _ = mathgen.generate(n=n, seed=5)
    return [
        {
            "id": r["id"],
            "messages": [
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["response"]},
            ],
        }
        for r in rows
    ]


def _spec(**over: Any) -> RunSpec:
    base = [
        "batch_size=4",
        "lr=0.005",
        "warmup_steps=2",
        "merge=false",
        "lora.r=4",
        "precision=fp32",
        "lora.dropout=0.1",
    ]
    return RunSpec.from_sources(
        overrides=base + [f"{k}={v}" for k, v in over.items()], base_model="t", data="d"
    )


def _losses(log: Path) -> dict[int, float]:
    out: dict[int, float] = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        out[rec["step"]] = rec["loss"]  # a re-run step after resume overwrites the killed run's value
    return out


def _pairs(mathgen: Any, n: int = 120) -> list[dict[str, Any]]:
    """Preference pairs: the right answer chosen, another problem's answer rejected."""
    rows, _ = mathgen.generate(n=n, seed=5)
    return [
        {"id": r["id"], "prompt": r["prompt"], "chosen": r["response"], "rejected": rows[i - 1]["response"]}
        for i, r in enumerate(rows)
    ]


@pytest.mark.parametrize(
    "method",
    [
        "sft_lora",
        "sft_full",  # every weight in the checkpoint (tied embeddings saved once)
        "dpo",  # full-weight DPO: the reference log-probs must come from the base, not the checkpoint
    ],
)
def test_sigkill_and_resume_matches_straight_run(
    tiny_model: Path, mathgen: Any, tmp_path: Path, method: str
) -> None:
    rows = _pairs(mathgen) if method == "dpo" else _rows(mathgen)
    extra = {"sft_lora": {}, "sft_full": {"lr": 0.001}, "dpo": {"lr": 0.001, "dpo.full": "true"}}[method]
    spec = _spec(max_steps=20, save_every=10, eval_every=100, method=method, **extra)
    (tmp_path / "spec.json").write_text(spec.model_dump_json())
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "driver.py").write_text(DRIVER)

    def launch(out: str, log: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                str(tmp_path / "driver.py"),
                str(tmp_path / "spec.json"),
                str(tmp_path / "rows.json"),
                str(tmp_path / out),
                str(tmp_path / log),
                str(tiny_model),
            ],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )

    straight = launch("straight", "straight.jsonl")
    killed = launch("killed", "killed.jsonl")
    ckpt = tmp_path / "killed" / "checkpoints" / "step-000010"
    deadline = time.monotonic() + 240
    while not ckpt.exists() and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.05)
    assert ckpt.exists(), "no checkpoint at step 10"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert straight.wait(timeout=300) == 0
    resumed = launch("killed", "killed.jsonl")
    assert resumed.wait(timeout=300) == 0

    a, b = _losses(tmp_path / "straight.jsonl"), _losses(tmp_path / "killed.jsonl")
    assert sorted(a) == sorted(b) == list(range(1, 21))
    for step in range(1, 21):
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), f"step {step}"


def test_watchdog_recovers_from_nan_and_spike(
    tiny_model: Path, mathgen: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(mathgen)
    spec = _spec(max_steps=24, save_every=4, eval_every=100, **{"watchdog.min_history": 3})
    clean = ListSink()
    sft_lora.run(spec, tiny_model, rows, [], tmp_path / "clean", clean)

    real = loop.response_loss_sum
    calls = {"n": 0}

    def faulty(model: Any, batch: Any) -> Any:
        calls["n"] += 1
        loss = real(model, batch)
        if calls["n"] == 10:
            return loss * float("nan")  # a poisoned batch
        if calls["n"] == 17:
            return loss * 40.0  # a loss spike
        return loss

    monkeypatch.setattr(loop, "response_loss_sum", faulty)
    hurt = ListSink()
    sft_lora.run(spec, tiny_model, rows, [], tmp_path / "hurt", hurt)

    interventions = [(msg, step) for kind, msg, step in hurt.events if kind == "watchdog"]
    assert len(interventions) == 2
    assert (
        interventions[0][0].startswith("nan_loss at step 10")
        and "rolled back to step-000008" in interventions[0][0]
    )
    assert (
        interventions[1][0].startswith("loss_spike at step") and "learning rate x0.5" in interventions[1][0]
    )
    assert all(math.isfinite(v) for v in hurt.loss.values()) and max(hurt.loss) == 24
    tail = lambda d: sum(d[s] for s in range(21, 25)) / 4  # noqa: E731
    assert tail(hurt.loss) == pytest.approx(tail(clean.loss), rel=0.25)


def test_early_stopping_keeps_the_best(
    tiny_model: Path, mathgen: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(mathgen, n=60)
    # Scripted validation losses: best at the 2nd validation (step 4), then two without improvement.
    scripted = iter([3.0, 2.0, 2.05, 2.5, 1.0])
    monkeypatch.setattr(loop, "validation_loss", lambda *a, **k: next(scripted))
    spec = _spec(
        max_steps=40, save_every=100, eval_every=2, early_stopping_patience=2, early_stopping_min_delta=0.1
    )
    sink = ListSink()
    result = sft_lora.run(spec, tiny_model, rows, rows[:4], tmp_path / "es", sink)
    kinds = [k for k, _, _ in sink.events]
    assert result.steps == 8 and sink.val == {2: 3.0, 4: 2.0, 6: 2.05, 8: 2.5}
    assert "early_stop" in kinds and "best_restored" in kinds
    ckpts = tmp_path / "es" / "checkpoints"
    assert json.loads((ckpts / "best" / "state.json").read_text())["step"] == 4
    from safetensors.torch import load_file

    best = load_file(ckpts / "best" / "adapter" / "adapter_model.safetensors")
    final = load_file(tmp_path / "es" / "adapter" / "adapter_model.safetensors")
    assert best.keys() == final.keys() and all((best[k] == final[k]).all() for k in best)


def test_early_stopping_on_a_generation_metric_keeps_the_highest(
    tiny_model: Path, mathgen: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation generates real answers and scores them with the evaluation court; the scores are
    scripted (a tiny random model answers nothing right) so the best is known: higher is better."""
    from imts.evals import scoring

    real_score = scoring.score
    scored: list[int] = []
    scripted = iter([0.2, 0.5, 0.45, 0.4, 0.9])

    def score(rows: Any, texts: Any, metrics: Any, judges: Any) -> Any:
        out = real_score(rows, texts, metrics, judges)  # the real scoring runs on the real answers
        assert len(texts) == len(rows) == 4 and all(isinstance(t, str) for t in texts)
        scored.append(len(rows))
        out.summary["exact_match"] = next(scripted)
        return out

    monkeypatch.setattr(scoring, "score", score)
    rows = _rows(mathgen, n=60)
    spec = _spec(
        max_steps=40,
        save_every=100,
        eval_every=2,
        val_generation_metrics=["exact_match", "rouge_l"],
        val_generation_items=4,
        val_generation_max_new_tokens=6,
        early_stopping_metric="val_exact_match",
        early_stopping_patience=2,
    )
    values: dict[int, dict[str, float]] = {}
    sink = ListSink()
    sink.metrics = lambda step, v: values.setdefault(step, {}).update(v)  # type: ignore[method-assign]
    result = sft_lora.run(spec, tiny_model, rows, rows[:8], tmp_path / "gen", sink)
    assert result.steps == 8 and scored == [4, 4, 4, 4]
    assert [values[s]["val_exact_match"] for s in (2, 4, 6, 8)] == [0.2, 0.5, 0.45, 0.4]
    assert all(0 <= values[s]["val_rouge_l"] <= 1 and "val_loss" in values[s] for s in (2, 4, 6, 8))
    assert math.isfinite(values[8]["loss"])  # training went on after each validation
    stop = next(m for k, m, _ in sink.events if k == "early_stop")
    assert stop.startswith("val_exact_match has not improved for 2 validations; best 0.5000 at step 4")
    ckpts = tmp_path / "gen" / "checkpoints"
    assert json.loads((ckpts / "best" / "state.json").read_text())["step"] == 4


def test_early_stopping_metric_must_be_one_the_validation_reports() -> None:
    from imts.core.errors import InputError

    with pytest.raises(InputError, match="'val_exact_match' is not reported by a sft_lora validation"):
        RunSpec.from_sources(overrides=["early_stopping_metric=val_exact_match"], base_model="m", data="d")
    with pytest.raises(InputError, match="val_generation_metrics is for SFT runs"):
        RunSpec.from_sources(
            overrides=["method=dpo", "val_generation_metrics=[exact_match]"], base_model="m", data="d"
        )
    with pytest.raises(InputError, match="unknown \\['accuracy'\\]"):
        RunSpec.from_sources(overrides=["val_generation_metrics=[accuracy]"], base_model="m", data="d")
    dpo = RunSpec.from_sources(
        overrides=["method=dpo", "early_stopping_metric=val_reward_accuracy"], base_model="m", data="d"
    )
    assert not dpo.early_stopping_minimizes and RunSpec(base_model="m", data="d").early_stopping_minimizes
    f1 = RunSpec.from_sources(
        overrides=["val_generation_metrics=[f1]", "early_stopping_metric=val_answer_f1"],
        base_model="m",
        data="d",
    )
    assert f1.validation_metrics == ("val_loss", "val_answer_f1")


def test_best_checkpoint_is_hard_links(tmp_path: Path) -> None:
    """``best/`` shares the checkpoint's files instead of copying their bytes."""
    from imts.train import checkpoint

    ckpt = tmp_path / "checkpoints" / "step-000002"
    (ckpt / "adapter").mkdir(parents=True)
    (ckpt / "adapter" / "adapter_model.safetensors").write_bytes(b"w" * 1000)
    (ckpt / "trainer_state.pt").write_bytes(b"o" * 2000)
    best = checkpoint.keep_best(ckpt, tmp_path / "checkpoints")
    for rel in ("adapter/adapter_model.safetensors", "trainer_state.pt"):
        assert (best / rel).stat().st_ino == (ckpt / rel).stat().st_ino, rel
    assert checkpoint.drop_all(tmp_path / "checkpoints") == 3000  # each file counted once
    assert not (tmp_path / "checkpoints").exists()
