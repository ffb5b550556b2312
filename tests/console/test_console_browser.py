"""The web console in real Chromium (Debian's, driven by Playwright) against a real ``imts server``
process: a researcher signs in, uploads the example data, splits it, launches a LoRA run of the tiny
model from the form, watches its curve grow live, evaluates before and after (8 items each), opens
the report of those two evaluations, switches to Chinese and revokes a key; a viewer sees no launch
or delete control and the API refuses anyway. Every step saves a screenshot under the test's tmp dir."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from tests.conftest import write_jsonl
from tests.console.helpers import ARGS, CHROMIUM, PASSWORD, Server, needs_chromium, serve, world
from tests.console.helpers import login as _login

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, mathgen: ModuleType
) -> Iterator[Server]:
    """A real server: an administrator, tenant ``acme`` with a researcher and a viewer, the tiny
    model registered as a base model, and the example task's data written to a file to upload."""
    tmp = tmp_path_factory.mktemp("console")
    env = world(tmp)
    rows, _ = mathgen.generate(n=200, seed=3)
    data = write_jsonl(tmp / "math.jsonl", rows)
    with serve(env, tmp, data, tiny_model) as srv:
        yield srv


def test_researcher_walks_every_page(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    offsite: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda r: None if r.url.startswith(server.url) else offsite.append(r.url))
        page.on("dialog", lambda d: d.accept())
        _login(page, server.url, "alice")
        expect(page.locator("#jobs")).to_be_visible()
        page.screenshot(path=shots / "1-overview.png")

        # Datasets: the upload goes in chunks with a progress bar; then an 80/10/10 split.
        page.click("#nav-datasets")
        page.set_input_files("#upload-file", str(server.data))
        page.fill("#upload-name", "math")
        page.click("#upload")
        expect(page.locator("#upload-msg")).to_contain_text("math@1", timeout=30_000)
        expect(page.locator("#upload-bar > div")).to_have_attribute("style", "width:100%")
        expect(page.locator("#stats")).to_contain_text("category")
        page.click("#split")
        expect(page.locator("#versions")).to_contain_text("@2", timeout=30_000)
        expect(page.locator("#preview table")).to_be_visible()
        page.fill("#where", "category = 'addition'")
        page.click("#filter")
        expect(page.locator("#preview")).to_contain_text("addition")
        page.click("#diff-run")
        expect(page.locator("#diff")).to_contain_text("unchanged")
        expect(page.locator("#lineage")).to_contain_text("split")
        page.screenshot(path=shots / "2-datasets.png", full_page=True)

        # Launch: the form comes from the run spec's schema; a bad value is shown at its field.
        page.click("#nav-launch")
        expect(page.locator("#plan table")).to_be_visible(timeout=30_000)
        page.select_option("#run-data", "math@2")
        page.fill("#run-lr", "-1")
        page.click("#launch")
        expect(page.locator('[data-error="lr"]')).to_contain_text("greater than 0")
        small = {"lr": "0.003", "max_steps": "24", "batch_size": "4", "eval_every": "4", "save_every": "24",
                 "val_max_items": "4", "max_seq_len": "64"}  # fmt: skip
        for field, value in small.items():
            page.fill(f"#run-{field}", value)
        page.fill("#model-name", "math-tiny")
        page.screenshot(path=shots / "3-launch.png", full_page=True)
        page.click("#launch")
        page.click("#watch-run", timeout=60_000)

        # Monitor: the loss curve grows live over server-sent events.
        page.wait_for_selector("#view[data-live-step]", timeout=60_000)
        first = int(page.locator("#view").get_attribute("data-live-step") or 0)
        page.wait_for_function(f"Number(document.getElementById('view').dataset.liveStep) > {first + 3}",
                               timeout=60_000)  # fmt: skip
        page.screenshot(path=shots / "4-monitor.png", full_page=True)
        expect(page.locator("#monitor-status")).to_contain_text("succeeded", timeout=90_000)
        run_id = page.locator("#run-picker input:checked").get_attribute("value")

        # Evaluate the base model and the tuned run from the evaluation form, then the report.
        page.click("#nav-launch")
        page.wait_for_selector("#eval-model")
        for model in ("tiny-llama", run_id):
            page.fill("#eval-model", model or "")
            page.fill("#eval-max_items", "8")
            page.fill("#eval-max_new_tokens", "8")
            page.click("#launch-eval")
            expect(page.locator("#eval-msg")).to_contain_text("job_", timeout=30_000)
        page.goto(f"{server.url}/#/overview")
        page.wait_for_function(
            "(rows => rows.length === 2 && rows.every(r => r.textContent.includes('succeeded')))([...document"
            ".querySelectorAll('#jobs tr[data-job]')].filter(r => r.textContent.includes('eval')))",
            timeout=120_000,
            polling=500,
        )
        costs = page.locator("#jobs tr[data-job] td.cost").all_inner_texts()
        assert costs and all(c.startswith("$") for c in costs)  # CPU-hours x the pool's price table
        expect(page.locator("#costs")).to_contain_text("default $")
        # The report compares the two limited evaluations just launched, picked on the page and
        # sent explicitly (the server pairs only whole evaluations by itself).
        page.goto(f"{server.url}/#/evaluation/{run_id}")
        expect(page.locator("#report-baseline option:checked")).to_contain_text("8 items")
        expect(page.locator("#report-tuned option:checked")).to_contain_text("8 items")
        page.click("#make-report")
        expect(page.locator("#report-frame")).to_be_visible(timeout=60_000)
        expect(page.locator("#items tbody tr").first).to_be_visible()
        page.select_option("#item-outcome", "both_wrong")
        assert all(o == "both_wrong" for o in page.locator("#items tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.outcome)"))  # fmt: skip
        page.screenshot(path=shots / "5-evaluation.png", full_page=True)

        # Models: the registry shows the new version.
        page.click("#nav-models")
        expect(page.locator("#models")).to_contain_text("math-tiny:1")
        # Export the adapter (checked on the server by loading it back), then download it as one tar.
        page.click("[data-export='math-tiny:1']")
        expect(page.locator("#export-download")).to_be_visible(timeout=120_000)
        with page.expect_download() as download:
            page.click("#export-download")
        with tarfile.open(download.value.path()) as tar:
            assert "math-tiny-1-adapter/adapter_model.safetensors" in tar.getnames()

        # Chinese, remembered on the server: a new browser session comes back in Chinese.
        page.select_option("#lang", "zh")
        expect(page.locator("#nav-overview")).to_have_text("总览")
        with httpx.Client(base_url=f"{server.url}/api/v1") as c:
            c.post("/auth/login", json={"username": "alice", "password": PASSWORD})
            assert c.get("/me").json()["user"]["lang"] == "zh"

        # Admin: create a key (its secret shown once), then revoke it; the API refuses it from then on.
        page.click("#nav-admin")
        page.fill("#key-name", "ci")
        page.click("#key-create")
        secret = page.locator("#key-secret-value").inner_text()
        bearer = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{server.url}/api/v1/me", headers=bearer).status_code == 200
        page.screenshot(path=shots / "6-admin-zh.png", full_page=True)
        page.locator("[data-revoke]").first.click()
        expect(page.locator("#keys")).to_contain_text("已吊销")
        assert httpx.get(f"{server.url}/api/v1/me", headers=bearer).status_code == 401
        browser.close()
    assert offsite == []  # every script, style and font came from the server itself
    assert len(list(shots.glob("*.png"))) == 6


def test_viewer_sees_no_launch_or_delete_and_the_api_refuses(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        _login(page, server.url, "vic")
        page.click("#nav-launch")
        expect(page.locator("#no-launch")).to_be_visible()
        assert page.locator("#launch, #launch-eval").count() == 0
        page.click("#nav-datasets")
        expect(page.locator("#datasets")).to_be_visible()
        assert page.locator("#upload, #split").count() == 0
        page.click("#nav-admin")
        expect(page.locator("#keys")).to_be_visible()
        assert page.locator("#members button.danger, #member-set").count() == 0
        page.screenshot(path=tmp_path / "viewer.png", full_page=True)
        # The API refuses what the page does not offer, with the viewer's own session.
        status = page.evaluate(
            """async () => (await fetch('/api/v1/tenants/acme/projects/default/train', {method: 'POST',
                 headers: {'Content-Type': 'application/json',
                           'X-CSRF-Token': sessionStorage.getItem('imts.csrf')},
                 body: JSON.stringify({run: {base_model: 'tiny-llama', data: 'math@2'}})})).status"""
        )
        assert status == 403
        browser.close()
