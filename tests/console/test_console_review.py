"""The review queue page, in real Chromium against a real ``imts server``.

The world: 40 rows of the example math data imported as ``math``, then a real data fix
(``imts data fix math --apply --cot --augment division=0.12 --review-share 1.0``: every rewritten and
every generated row held for review) that made ``math@2``. A viewer reads the queue without a single
control. The researcher sees each item's question and answer, a rewrite's original answer beside the
new one; rejects one rewrite with a reason, accepts another alone, accepts the rest but one generated
row at once; the counts follow; commits the accepted rows: the new version ``math@3`` holds the
accepted rows (checked through the API), not the rejected rewrite nor the pending generated row, and
opens from the page. The Chinese switch turns the page's words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from tests.conftest import write_jsonl
from tests.console.helpers import (
    ARGS,
    CHROMIUM,
    PASSWORD,
    Server,
    imts_cli,
    login,
    needs_chromium,
    serve,
    world,
)

pytestmark = needs_chromium
P = "/tenants/acme/projects/default"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, mathgen: ModuleType
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("console-review")
    env = world(tmp)
    here = {**env, "IMTS_TENANT": "acme", "IMTS_PROJECT": "default"}
    data = write_jsonl(tmp / "math.jsonl", mathgen.generate(n=40, seed=1)[0])
    imts_cli(here, "data", "import", str(data), "--name", "math")
    imts_cli(
        here, "data", "fix", "math", "--apply", "--cot", "--augment", "division=0.12", "--review-share", "1.0"
    )
    with serve(env, tmp, data, tiny_model) as srv:
        yield srv


def _get(url: str, path: str) -> Any:
    with httpx.Client(base_url=f"{url}/api/v1", timeout=60) as c:
        c.post("/auth/login", json={"username": "alice", "password": PASSWORD}).raise_for_status()
        r = c.get(P + path)
        assert r.status_code == 200, r.text
        return r.json()


def test_a_viewer_reads_the_queue_without_controls(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    held = _get(server.url, "/reviews?status=all")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        login(page, server.url, "vic")
        page.click("#nav-review")
        expect(page.locator("#review-items .review-item")).to_have_count(len(held))
        expect(page.locator("#review-read-only")).to_be_visible()
        expect(page.locator("#review-fixes tr[data-version='math@2']")).to_be_visible()
        controls = (
            ".review-accept, .review-reject, .review-check, .review-reason, #review-bulk, .review-commit"
        )
        assert page.locator(controls).count() == 0
        page.screenshot(path=tmp_path / "review-viewer.png", full_page=True)
        browser.close()


def test_a_researcher_reviews_and_commits_the_accepted_rows(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = server.url
    held = _get(url, "/reviews?status=all")
    rewrites = [i for i in held if i["kind"] == "rewritten"]
    generated = [i for i in held if i["kind"] == "generated"]
    assert len(rewrites) >= 2 and len(generated) >= 2 and all(i["status"] == "pending" for i in held)
    (fix,) = _get(url, "/reviews/fixes")
    assert (fix["version"], fix["pending"], fix["accepted"], fix["committed"]) == ("math@2", len(held), 0, [])
    rejected, accepted, left = rewrites[0], rewrites[1], generated[-1]
    item = lambda i: f"#review-items .review-item[data-id='{i['id']}']"  # noqa: E731

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        login(page, url, "alice")
        page.click("#nav-review")
        counts = page.locator("#review-counts")
        expect(counts).to_have_attribute("data-pending", str(len(held)))
        expect(page.locator("#review-items .review-item")).to_have_count(len(held))
        # a rewrite: the question, the original answer beside the new one, the added words marked
        card = page.locator(item(rejected))
        expect(card.locator(".review-question")).to_have_text(rejected["question"])
        expect(card.locator(".review-before")).to_have_text(rejected["original_response"])
        expect(card.locator(".review-after")).to_have_text(rejected["response"])
        # the original answer is kept at the end of the new one: nothing struck out, the steps marked
        assert card.locator(".review-before del").count() == 0
        assert card.locator(".review-after ins").first.inner_text().strip()
        # a generated row: its question and response, no "before"
        gen = page.locator(item(left))
        expect(gen.locator(".review-after")).to_have_text(left["response"])
        assert gen.locator(".review-before").count() == 0
        expect(gen).to_contain_text("Response (a new row)")
        page.screenshot(path=tmp_path / "review-queue.png", full_page=True)

        # reject one rewrite with a reason; accept another alone
        card.locator(".review-reason").fill("the steps skip the unit")
        card.locator(".review-reject").click()
        expect(card).to_have_attribute("data-status", "rejected")
        expect(card).to_contain_text("the steps skip the unit")
        expect(card).to_contain_text("by alice")
        assert card.locator(".review-accept, .review-check").count() == 0
        expect(counts).to_have_attribute("data-rejected", "1")
        page.locator(item(accepted)).locator(".review-accept").click()
        expect(page.locator(item(accepted))).to_have_attribute("data-status", "accepted")
        expect(counts).to_have_attribute("data-pending", str(len(held) - 2))
        # the rest at once but one generated row
        page.check("#review-select-all")
        page.locator(item(left)).locator(".review-check").uncheck()
        expect(page.locator("#review-selected")).to_have_text(f"{len(held) - 3} selected")
        page.fill("#review-bulk-reason", "checked by hand")
        page.click("#review-accept-selected")
        expect(page.locator("#review-bulk-msg")).to_have_text(f"{len(held) - 3} of {len(held) - 3} decided")
        expect(counts).to_have_attribute("data-pending", "1")
        expect(counts).to_have_attribute("data-accepted", str(len(held) - 2))
        expect(counts).to_have_attribute("data-rejected", "1")
        expect(page.locator(item(left))).to_have_attribute("data-status", "pending")
        expect(page.locator(item(generated[0]))).to_contain_text("checked by hand")
        row = page.locator("#review-fixes tr[data-version='math@2']")
        expect(row.locator("td[data-status=accepted]")).to_have_text(str(len(held) - 2))
        page.screenshot(path=tmp_path / "review-decided.png", full_page=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=tmp_path / "console-review.png")  # docs/img/console-review.png (resized)

        # commit the accepted rows: a new version, linked
        row.locator(".review-commit").click()
        expect(page.locator("#review-new-version")).to_have_text("math@3")
        expect(row.locator(".review-made")).to_contain_text(f"math@3 (+{len(held) - 2})")
        assert row.locator(".review-commit").count() == 0
        expect(row).to_contain_text("all accepted rows committed")
        page.screenshot(path=tmp_path / "review-committed.png", full_page=True)

        made = _get(url, "/datasets/refs/math@3/rows?limit=500")
        before = _get(url, "/datasets/refs/math@2/rows?limit=500")
        ids = {r["id"] for r in made["rows"]}
        answer = lambda r: next(m["content"] for m in r["messages"] if m["role"] == "assistant")  # noqa: E731
        by_id = {r["id"]: r for r in made["rows"]}
        assert made["total"] == before["total"] + len(generated) - 1
        assert {g["row_id"] for g in generated[:-1]} <= ids and left["row_id"] not in ids
        assert answer(by_id[accepted["row_id"]]) == accepted["response"]
        assert answer(by_id[rejected["row_id"]]) == rejected["original_response"]
        (fix,) = _get(url, "/reviews/fixes")
        assert [c["version"] for c in fix["committed"]] == ["math@3"]

        # the filters: the rejected row alone, with its reason
        page.select_option("#review-status", "rejected")
        expect(page.locator("#review-items .review-item")).to_have_count(1)
        expect(page.locator(item(rejected))).to_contain_text("the steps skip the unit")

        # Chinese
        page.select_option("#lang", "zh")
        expect(page.locator("#nav-review")).to_have_text("审核")
        expect(page.locator("h1")).to_have_text("审核队列")
        expect(page.locator("#review-counts")).to_contain_text("已拒绝")
        expect(page.locator(item(rejected)).locator(".review-kind")).to_have_text("改写")
        expect(page.locator("#review-fixes tr[data-version='math@2']")).to_contain_text("已接受的行均已提交")
        page.select_option("#review-status", "pending")
        expect(page.locator(item(left))).to_contain_text("回答（新增的行）")
        page.screenshot(path=tmp_path / "review-zh.png", full_page=True)
        page.select_option("#lang", "en")
        expect(page.locator("#nav-review")).to_have_text("Review")

        # the new version opens from the page
        page.select_option("#review-status", "all")
        page.locator("#review-fixes tr[data-version='math@2'] .review-made a").click()
        expect(page.locator("#dataset-detail h2").first).to_contain_text("math@3")
        browser.close()
