"""Run records (code version, packages, hardware, seeds) and `reproduce`: a tiny CPU run re-run from its
record gives the same per-step losses, bit for bit."""

from __future__ import annotations

from pathlib import Path

from imts.core.environment import code_version
from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.registry import base_models
from imts.store import runs
from imts.store.context import Context
from imts.train.service import reproduce, train
from imts.train.spec import RunSpec

TINY = ["max_steps=5", "batch_size=4", "eval_every=100", "save_every=100", "warmup_steps=1", "lora.r=4"]
TINY += ["merge=false", "precision=fp32", "seed=3", "lr=0.01"]


def test_a_tiny_cpu_run_reproduces_its_per_step_losses_exactly(
    ws: Context, tiny_model: Path, math_file: Path
) -> None:
    base_models.add(ws, tiny_model, name="tiny")
    ref = split_version(ws, import_file(ws, math_file, name="math"), seed=0).ref
    run_id = train(ws, RunSpec.from_sources(overrides=TINY, base_model="tiny", data=ref))
    env = runs.record(ws, run_id).environment
    assert env["seeds"] == {"seed": 3}
    assert len(env["code"]["commit"]) == 40 and isinstance(env["code"]["dirty"], bool)
    assert env["packages"]["torch"].startswith("2.") and "transformers" in env["packages"]
    assert env["hardware"]["cpus"] and env["hardware"]["cpu"]
    # A newer version of the dataset exists: the reproduction still trains on the recorded one.
    fewer = math_file.parent / "fewer.jsonl"
    fewer.write_text("".join(math_file.read_text().splitlines(keepends=True)[:50]))
    import_file(ws, fewer, name="math")

    rep = reproduce(ws, run_id)
    assert rep.identical and rep.steps == 5 and rep.max_abs_diff == 0.0 and rep.first_difference is None
    assert rep.environment_differences == {}
    again = runs.get(ws, rep.reproduced)
    assert again.dataset_version_id == runs.get(ws, run_id).dataset_version_id
    assert rep.model_version == "math-tiny-reproduced:1"
    cmp = runs.compare(ws, [run_id, rep.reproduced])
    assert "code.commit" in cmp.environment and cmp.environment_differing == []

    # A different seed is a different run: the comparison says so, and so would a reproduction.
    other = train(ws, RunSpec.from_sources(overrides=[*TINY, "seed=4"], base_model="tiny", data=ref))
    cmp = runs.compare(ws, [run_id, other])
    assert cmp.environment_differing == ["seeds.seed"] and "seed" in cmp.differing
    assert runs.history(ws, other, ["loss"])["loss"] != runs.history(ws, run_id, ["loss"])["loss"]


def test_a_dirty_checkout_is_recorded(tmp_path: Path) -> None:
    import git

    repo = git.Repo.init(tmp_path)
    (tmp_path / "a.py").write_text("x = 1\n")
    repo.index.add(["a.py"])
    repo.index.commit("one", author=git.Actor("t", "t@x"), committer=git.Actor("t", "t@x"))
    clean = code_version(tmp_path)
    assert clean["commit"] == repo.head.commit.hexsha and clean["dirty"] is False
    (tmp_path / "a.py").write_text("x = 2\n")
    dirty = code_version(tmp_path)
    assert dirty["dirty"] is True and dirty["diff_sha256"]
