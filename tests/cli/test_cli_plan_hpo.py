"""`imts plan` and `imts hpo` through the real command in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import imts


def test_plan_prints_table_and_recommendation(tmp_path: Path) -> None:
    out = imts(tmp_path, "plan", "--model", "llama-3-70b", "--gpus", "8xA100-80GB")
    assert out.returncode == 0, out.stderr
    assert "llama-3-70b (70.55B params) on 8xA100-80GB (NVLink)" in out.stdout
    for label in ("DDP", "ZeRO-2", "FSDP/ZeRO-3", "ZeRO-3+offload", "TP tp=8", "qlora", "full"):
        assert label in out.stdout
    assert "recommended: lora with FSDP/ZeRO-3 + checkpointing" in out.stdout
    assert not (tmp_path / "ws").exists()  # planning needs no workspace


def test_plan_json_and_written_configs(tmp_path: Path) -> None:
    out = imts(
        tmp_path, "plan", "--model", "qwen2.5-7b", "--gpus", "2xRTX4090-24GB", "--method", "full",
        "--seq", "2048", "--json", "--write-config", str(tmp_path / "cfg"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["params"] == 7_615_616_512 and plan["chosen"]["method"] == "full"
    assert plan["chosen"]["strategy"].startswith("ZeRO-3+offload")
    assert [Path(p).name for p in plan["configs"]] == [
        "deepspeed_zero3_offload.json",
        "accelerate_deepspeed.yaml",
    ]
    assert (
        json.loads((tmp_path / "cfg" / "deepspeed_zero3_offload.json").read_text())["zero_optimization"][
            "offload_optimizer"
        ]["device"]
        == "cpu"
    )


def test_plan_and_hpo_user_errors_are_one_line(tmp_path: Path) -> None:
    for args, message in (
        (["plan", "--model", "llama-3-8b", "--gpus", "8xTPU"], "unknown GPU 'tpu'"),
        (["plan", "--model", "gpt-5", "--gpus", "1xL4"], "unknown model 'gpt-5'"),
        (["plan", "--model", "llama-3-8b", "--method", "dora"], "unknown method 'dora'"),
        (["hpo", "--data", "d", "--base", "b", "--space", "s.yaml", "--sampler", "cma"], "unknown sampler"),
        (["hpo", "--resume", "hpo_nope"], "no hyper-parameter study 'hpo_nope'"),
        (["hpo", "--data", "d"], "--data, --base and --space are required"),
    ):
        out = imts(tmp_path, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr


def test_hpo_end_to_end(tmp_path: Path, tiny_model: Path, math_file: Path) -> None:
    assert imts(tmp_path, "models", "add", str(tiny_model), "--name", "tiny").returncode == 0
    assert imts(tmp_path, "data", "import", str(math_file), "--name", "math").returncode == 0
    assert imts(tmp_path, "data", "split", "math").returncode == 0
    (tmp_path / "space.yaml").write_text(
        "lr: {low: 0.001, high: 0.03, log: true}\nlora.r: {choices: [2, 4]}\n"
    )
    # In-process trials here; trials as jobs are tested in tests/jobs/test_jobs_hpo.py.
    out = imts(
        tmp_path, "hpo", "--data", "math@2", "--base", "tiny", "--space", "space.yaml", "--sampler", "random",
        "--trials", "2", "--inline", "max_steps=2", "batch_size=4", "eval_every=1", "save_every=100",
        "merge=false", "val_max_items=4", "warmup_steps=0",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "best run run_" in out.stdout and "report" in out.stdout
    report = next((tmp_path / "ws" / "artifacts" / "hpo").glob("*/report.json"))
    data = json.loads(report.read_text())
    assert len(data["trials"]) == 2 and data["best"]["params"]["lora.r"] in (2, 4)
    assert 0.001 <= data["best"]["params"]["lr"] <= 0.03
    runs = imts(tmp_path, "runs", "list")
    assert runs.returncode == 0 and sum(t["run_id"] in runs.stdout for t in data["trials"]) == 2


def test_plan_write_config_when_nothing_fits_is_an_error(tmp_path: Path) -> None:
    for extra in ((), ("--json",)):
        out = imts(
            tmp_path, "plan", "--model", "qwen2.5-7b", "--gpus", "1xRTX4090-24GB", "--method", "full",
            "--seq", "8192", "--batch", "8", "--write-config", str(tmp_path / "cfg"), *extra,
        )  # fmt: skip
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert f"wrote no config into {tmp_path / 'cfg'}: nothing fits" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and not (tmp_path / "cfg").exists()
    assert json.loads(out.stdout)["configs"] == []  # the plan is still printed
