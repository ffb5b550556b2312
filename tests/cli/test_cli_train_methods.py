"""`imts train --method/--nproc` through the real command: the options exist and bad combinations are
refused with one line before anything runs."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from tests.cli.test_cli import imts
from tests.conftest import write_jsonl


def test_train_help_lists_methods_and_nproc(tmp_path: Path) -> None:
    out = imts(tmp_path, "train", "--help")
    assert out.returncode == 0, out.stderr
    for text in ("--method", "sft_full", "dpo", "--nproc", "QLoRA"):
        assert text in out.stdout, text


def test_train_keys_lists_every_run_spec_key_without_needing_data(tmp_path: Path) -> None:
    from imts.train.spec import RunSpec

    out = imts(tmp_path, "train", "--keys")
    assert out.returncode == 0, out.stderr
    for key in [*RunSpec.model_fields, "lora.target_modules", "dpo.beta", "watchdog.loss_spike"]:
        if key not in ("lora", "dpo", "watchdog"):
            assert key in out.stdout, key


def test_train_refuses_bad_method_combinations(tmp_path: Path, tiny_model: Path, math_file: Path) -> None:
    for args, message in (
        (["--method", "ppo"], "field 'method'"),
        (["--method", "sft_full", "quantization=nf4"], "trains adapters"),
        (["--nproc", "4", "batch_size=2"], "batch_size / grad_accum must be at least nproc"),
        (["early_stopping_metric=val_bleu"], "'val_bleu' is not reported by a sft_lora validation"),
    ):
        out = imts(tmp_path, "train", "--data", "d", "--base", "b", *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    # A DPO job on a dataset of conversations is refused at submit, naming the dataset and the field.
    assert imts(tmp_path, "models", "add", str(tiny_model), "--name", "tiny").returncode == 0
    assert imts(tmp_path, "data", "import", str(math_file), "--name", "math").returncode == 0
    out = imts(tmp_path, "train", "--data", "math", "--base", "tiny", "--method", "dpo", "train_split=null")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "math@1 holds sft rows, without the 'chosen' and 'rejected' fields" in out.stderr


def test_report_on_a_dpo_run_scores_preference_accuracy(
    tmp_path: Path, tiny_model: Path, mathgen: ModuleType
) -> None:
    from tests.cli.test_cli_court import imts as cli  # in this process: one import of torch for all

    rows, _ = mathgen.generate(n=60, seed=2)
    pairs = [{"prompt": r["prompt"], "chosen": r["response"], "rejected": "I do not know."} for r in rows]
    write_jsonl(tmp_path / "prefs.jsonl", pairs)
    assert cli(tmp_path, "models", "add", str(tiny_model), "--name", "tiny").returncode == 0
    assert cli(tmp_path, "data", "import", str(tmp_path / "prefs.jsonl"), "--name", "prefs").returncode == 0
    assert cli(tmp_path, "data", "split", "prefs", "--seed", "0").returncode == 0
    train = cli(
        tmp_path, "train", "--data", "prefs@2", "--base", "tiny", "--method", "dpo", "--inline", "max_steps=2"
    )
    assert train.returncode == 0, train.stderr
    run = re.findall(r"trained run (\S+):", train.stdout)[0]
    # Without evaluations the report names the exact commands that work, and --evaluate runs them.
    out = cli(tmp_path, "report", run, "--no-clusters")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert (
        f"imts eval --model tiny --data prefs@2:test` and `imts eval --model {run} --data prefs@2:test`"
        in (out.stderr)
        and "preference accuracy" in out.stderr
    ), out.stderr
    done = cli(tmp_path, "report", run, "--no-clusters", "--evaluate")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("evaluated run") == 2 and "**Accuracy:**" in done.stdout
    assert "ref `chosen`" in done.stdout or "on 6 items" in done.stdout
    again = cli(tmp_path, "report", run, "--no-clusters", "--evaluate")  # nothing left to evaluate
    assert again.returncode == 0 and "evaluated run" not in again.stdout
    # A partial evaluation (--limit) is not picked up; named explicitly, it is refused in one line.
    part = cli(tmp_path, "eval", "--model", run, "--data", "prefs@2", "--limit", "3", "--inline")
    limited = re.findall(r"evaluated run (\S+)", part.stdout)[0]
    assert cli(tmp_path, "report", run, "--no-clusters").returncode == 0
    mixed = cli(tmp_path, "report", run, "--no-clusters", "--tuned", limited)
    assert mixed.returncode == 2 and "hold different items" in mixed.stderr, mixed.stderr
