"""Data insights (page 5) and the loop (page 8) in real Chromium against a real ``imts server``.

One module fixture imports the example data and starts a closed loop on the tiny model through the API
(policy ``approve``, two iterations at most, eight items per evaluation set); the reads that follow it
move it on (embedded server: each read runs a scheduler pass) until it waits for approval after its
first iteration. Its analysis step stored the analysis the insights page shows. Then: the semantic map
(a dot per sampled row, one colour per cluster, rows with findings in red, the row's text on hover),
the health score, the findings and their rows, a new analysis run from the page; a viewer sees the
loop but no stop / resume / approve control (and the API refuses); the researcher's page shows the
curve and the timeline, approves, stops, resumes and follows the loop live to its end; Chinese
throughout. Screenshots are saved under each test's tmp dir."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
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
RED = "#d0021b"  # insights.js: rows with findings
INTENT = "Teach the model to solve grade-school math word problems step by step in English and Chinese"
TINY_TRAIN = ["max_steps=6", "batch_size=4", "save_every=3", "eval_every=1000", "merge=false", "lora.r=4"]


@dataclass
class LoopWorld:
    server: Server
    loop_id: str


@contextmanager
def _client(url: str, user: str) -> Iterator[httpx.Client]:
    """An API client signed in as ``user`` (session cookie and CSRF token)."""
    with httpx.Client(base_url=f"{url}/api/v1", timeout=300) as c:
        csrf = c.post("/auth/login", json={"username": user, "password": PASSWORD}).json()["csrf_token"]
        c.headers["X-CSRF-Token"] = csrf
        yield c


def _get(url: str, path: str) -> Any:
    with _client(url, "alice") as c:
        r = c.get(P + path)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def lw(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, math_file: Path) -> Iterator[LoopWorld]:
    """The server with the example data (400 rows) and a loop waiting for approval after iteration 1."""
    tmp = tmp_path_factory.mktemp("console-loop")
    env = world(tmp, IMTS_HEARTBEAT_TIMEOUT_S="60")  # torch start-up on a busy machine is not a lost worker
    imts_cli({**env, "IMTS_TENANT": "acme", "IMTS_PROJECT": "default"}, "data", "import", str(math_file),
             "--name", "math")  # fmt: skip
    with serve(env, tmp, math_file, tiny_model) as srv, _client(srv.url, "alice") as c:
        spec = {"intent": INTENT, "data": "math", "base_model": "tiny-llama", "train": TINY_TRAIN,
                "eval_items": 8, "max_iterations": 2, "policy": "approve"}  # fmt: skip
        r = c.post(f"{P}/loops", json=spec)
        assert r.status_code == 201, r.text
        loop_id = r.json()["id"]
        deadline = time.monotonic() + 600
        while (view := c.get(f"{P}/loops/{loop_id}").json())["status"] == "running":
            assert time.monotonic() < deadline, view
            time.sleep(1)
        assert view["status"] == "awaiting_approval", view
        yield LoopWorld(srv, loop_id)


def _browser(p):  # type: ignore[no-untyped-def]
    return p.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def test_insights_map_health_findings_and_a_new_analysis(lw: LoopWorld, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = lw.server.url
    analysis = _get(url, "/datasets/refs/math@1/analysis")
    sem = analysis["semantic"]
    flagged = {i for f in analysis["findings"] for i in f["row_ids"]}
    offsite: list[str] = []
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda r: None if r.url.startswith(url) else offsite.append(r.url))
        login(page, url, "alice")
        page.click("#nav-insights")  # the version analysed last is the default: the loop's analysis of math@1
        expect(page.locator("#insights-version option:checked")).to_contain_text("@1")
        page.wait_for_selector("#semantic-map circle")
        dots = page.locator("#semantic-map circle").evaluate_all(
            "cs => cs.map(c => ({id: c.dataset.id, cluster: Number(c.dataset.cluster),"
            " red: c.dataset.flagged === '1', fill: c.getAttribute('fill')}))"
        )
        # a dot per sampled row; one colour per cluster; exactly the rows some finding names in red
        assert len(dots) == len(sem["points"]) == sem["sample"] > 100
        assert {d["cluster"] for d in dots} == {c["id"] for c in sem["clusters"]}
        assert {d["id"] for d in dots if d["red"]} == flagged & set(sem["ids"]) != set()
        assert {d["fill"] for d in dots if d["red"]} == {RED}
        fills = {
            d["cluster"]: {x["fill"] for x in dots if not x["red"] and x["cluster"] == d["cluster"]}
            for d in dots
        }
        assert all(len(f) <= 1 for f in fills.values())  # one colour a cluster ...
        colours = [next(iter(f)) for f in fills.values() if f]
        assert len(set(colours)) == len(colours) and RED not in colours  # ... none shared, none red
        assert page.locator("#map-legend li").count() == len(sem["clusters"]) + 1
        # hovering a dot shows its row's text (fetched from the rows API)
        page.locator("#semantic-map circle[data-flagged='0']").nth(5).hover(force=True)  # dots overlap
        expect(page.locator("#map-tip .tip-text")).to_be_visible()
        hovered = page.locator("#map-tip").get_attribute("data-for")
        row = _get(url, f"/datasets/refs/math@1/rows?where=id%3D%27{hovered}%27")["rows"][0]
        expect(page.locator("#map-tip")).to_contain_text(row["messages"][0]["content"][:30])
        # the health score and its five sub-scores, each with its reason
        assert float(page.locator("#health-score").inner_text()) == pytest.approx(
            analysis["health"]["score"], abs=0.06
        )
        assert page.locator("#sub-scores tr").count() == 5
        # the findings, severe first; each opens its rows here and in the Datasets page's preview
        kinds = page.locator("#findings tr[data-kind]").evaluate_all("rs => rs.map(r => r.dataset.kind)")
        assert sorted(kinds) == sorted(f["kind"] for f in analysis["findings"])
        assert {"personal_data", "answer_only", "under_represented"} <= set(kinds)
        pii = next(f for f in analysis["findings"] if f["kind"] == "personal_data")
        expect(page.locator("#findings tr[data-kind=personal_data]")).to_contain_text(pii["message_en"])
        page.click("[data-rows=personal_data]")
        expect(page.locator("#finding-rows-table tr[data-id]")).to_have_count(len(pii["row_ids"]))
        shown = page.locator("#finding-rows-table tr[data-id]").evaluate_all(
            "rs => rs.map(r => r.dataset.id)"
        )
        assert sorted(shown) == sorted(pii["row_ids"])
        red = page.locator("#semantic-map circle[data-flagged='1']").evaluate_all(
            "cs => cs.map(c => c.dataset.id)"
        )
        assert set(red) == set(pii["row_ids"]) & set(sem["ids"])  # the map now marks that finding's rows
        page.screenshot(path=tmp_path / "insights.png", full_page=True)
        page.click("#rows-in-datasets")
        expect(page.locator("#preview")).to_contain_text(f"{len(pii['row_ids'])} rows")
        for rid in pii["row_ids"]:
            expect(page.locator("#preview")).to_contain_text(rid)

        # A new analysis of the split version, run as a job from the page; it shows once stored.
        page.goto(f"{url}/#/insights/math?ref=math@2")
        expect(page.locator("#no-analysis")).to_be_visible()
        page.click("#analyze-card summary")
        page.fill("#analyze-intent", "Solve grade-school math word problems step by step")
        page.fill("#analyze-sample", "300")
        page.click("#analyze")
        expect(page.locator("#semantic-map circle")).to_have_count(300, timeout=240_000)
        expect(page.locator("#insights-version option:checked")).to_contain_text("analyses: 1")
        assert _get(url, "/datasets/refs/math@2/analyses")[0]["intent"].startswith("Solve grade-school")

        # Chinese: the labels, the severities and each finding's own message.
        page.goto(f"{url}/#/insights/math?ref=math@1")
        page.wait_for_selector("#findings")
        page.select_option("#lang", "zh")
        expect(page.locator("#nav-insights")).to_have_text("数据洞察")
        expect(page.locator("#findings tr[data-kind=personal_data]")).to_contain_text(pii["message_zh"])
        expect(page.locator("#findings")).to_contain_text("严重")
        expect(page.locator("#health")).to_contain_text("健康分")
        page.screenshot(path=tmp_path / "insights-zh.png", full_page=True)
        page.select_option("#lang", "en")
        expect(page.locator("#nav-insights")).to_have_text("Data insights")
        browser.close()
    assert offsite == []


def test_viewer_sees_the_loop_but_no_control_and_the_api_refuses(lw: LoopWorld, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = lw.server.url
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        login(page, url, "vic")
        page.click("#nav-loop")
        expect(page.locator("#timeline > li")).to_have_count(1)
        expect(page.locator("#loop-report")).to_be_visible()
        # the loop waits for approval (this module's researcher test approves it later): the proposed
        # actions are shown to everyone, the buttons to those who may train
        if _get(url, f"/loops/{lw.loop_id}")["status"] == "awaiting_approval":
            expect(page.locator("#proposed li").first).to_be_visible()
        assert page.locator("#loop-stop, #loop-resume, #loop-approve").count() == 0
        page.click("#nav-insights")
        page.wait_for_selector("#semantic-map circle")
        assert page.locator("#analyze-card, #analyze").count() == 0
        page.screenshot(path=tmp_path / "viewer-loop.png", full_page=True)
        for action in ("approve", "stop"):
            status = page.evaluate(
                """async (path) => (await fetch(path, {method: 'POST',
                     headers: {'X-CSRF-Token': sessionStorage.getItem('imts.csrf')}})).status""",
                f"/api/v1{P}/loops/{lw.loop_id}/{action}",
            )
            assert status == 403
        browser.close()


def test_researcher_follows_the_loop_live_approves_stops_and_resumes(lw: LoopWorld, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = lw.server.url
    log = _get(url, f"/loops/{lw.loop_id}/log")
    steps = _get(url, f"/loops/{lw.loop_id}/steps")
    actions = [s for s in steps if s["phase"] == "feedback"][-1]["result"]["actions"]
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        login(page, url, "alice")
        page.click("#nav-loop")
        expect(page.locator(f"#loops tr[data-loop={lw.loop_id}]")).to_contain_text("awaiting approval")
        detail = page.locator("#loop-detail")
        expect(detail).to_have_attribute("data-status", "awaiting_approval")
        # the curve: the base model at iteration 0 and iteration 1, per evaluation set
        curve = page.locator("#loop-curve")
        expect(curve).to_have_attribute("data-sets", "validation,test,probe")
        expect(curve).to_have_attribute("data-points", "6")
        expect(page.locator("#loop-curve canvas")).to_be_visible()
        # the timeline: problem found -> data fix -> gain, from the log
        first = page.locator("#timeline > li[data-iteration='1']")
        for problem in log[0]["problems"]:
            expect(first.locator(".problems")).to_contain_text(problem["en"])
        expect(first.locator(".fix")).to_contain_text(
            f"personal data replaced (rows): {log[0]['fix']['pii_rows']}"
        )
        expect(first.locator(".fix")).to_contain_text(
            f"augmented division: +{log[0]['fix']['augmented']['division']}"
        )
        expect(first.locator(".gains tr[data-set]")).to_have_count(3)
        expect(first.locator(".trained-from")).to_have_text("trained from: the base model")
        expect(page.locator("#proposed li")).to_have_count(len(actions))
        expect(page.locator("#loop-steps tr[data-phase]")).to_have_count(7)
        href = page.locator("#loop-report").get_attribute("href") or ""
        assert href.endswith("lang=en")
        report = page.request.get(url + href)
        assert report.status == 200 and "Iteration log" in report.text()
        page.screenshot(path=tmp_path / "loop-approval.png", full_page=True)

        # Approve: iteration 2's data fix starts; stop pauses its job; resume goes on.
        page.click("#loop-approve")
        expect(detail).to_have_attribute("data-status", "running")
        expect(page.locator("#loop-steps tr[data-iteration='2'][data-phase=repair]")).to_be_visible(
            timeout=60_000
        )
        page.click("#loop-stop")
        expect(detail).to_have_attribute("data-status", "stopped")
        expect(page.locator("#loop-resume")).to_be_visible()
        assert page.locator("#loop-stop, #loop-approve").count() == 0
        assert _get(url, f"/loops/{lw.loop_id}")["status"] == "stopped"
        page.click("#loop-resume")
        expect(detail).to_have_attribute("data-status", "running")
        # Live: the page's own polling moves the loop on (nothing else reads it now) to its end.
        polls = int(page.locator("#view").get_attribute("data-polls") or 0)
        expect(detail).to_have_attribute("data-status", "finished", timeout=400_000)
        assert int(page.locator("#view").get_attribute("data-polls") or 0) > polls + 3
        expect(page.locator("#timeline > li")).to_have_count(2)
        expect(curve).to_have_attribute("data-points", "9")
        expect(page.locator("#loop-where")).to_contain_text("the iteration limit was reached")
        best = _get(url, f"/loops/{lw.loop_id}")["best"]["iteration"]
        model = next(
            e["model_version"] for e in _get(url, f"/loops/{lw.loop_id}/log") if e["iteration"] == best
        )
        expect(page.locator("#loop-where")).to_contain_text(f"Best: Iteration {best} ({model})")
        expect(page.locator(f"#loops tr[data-loop={lw.loop_id}]")).to_contain_text("finished")
        second = page.locator("#timeline > li[data-iteration='2']")
        expect(second.locator(".gains tr[data-set]")).to_have_count(3)
        # iteration 2 went on from iteration 1's model, the only one before it
        expect(second.locator(".trained-from")).to_have_text(
            "trained from: the model of iteration 1 (the best so far)"
        )
        assert page.locator("#loop-stop, #loop-resume, #loop-approve").count() == 0
        page.screenshot(path=tmp_path / "loop.png", full_page=True)

        # Chinese: the labels, each problem in Chinese, the stop reason and the report's language.
        page.select_option("#lang", "zh")
        expect(page.locator("#nav-loop")).to_have_text("闭环")
        log = _get(url, f"/loops/{lw.loop_id}/log")
        expect(page.locator("#timeline")).to_contain_text("发现的问题")
        for it in log:
            for problem in it["problems"]:
                expect(page.locator(f"#timeline > li[data-iteration='{it['iteration']}']")).to_contain_text(
                    problem["zh"]
                )
        expect(page.locator("#loop-where")).to_contain_text("已达到最大迭代次数")
        assert (page.locator("#loop-report").get_attribute("href") or "").endswith("lang=zh")
        page.screenshot(path=tmp_path / "loop-zh.png", full_page=True)
        page.select_option("#lang", "en")
        expect(page.locator("#nav-loop")).to_have_text("The loop")
        browser.close()
