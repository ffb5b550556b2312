// Evaluation: the comparison report as a page (radar, per-category table, win rates with intervals,
// failure clusters, items fixed and broken, drawn by the report itself) and a per-item table
// searchable by category and outcome.
import { api, h, proj, canTrain, t, lang, errorBox } from "./common.js";

const OUTCOMES = ["fixed", "broken", "both_right", "both_wrong"];
const outcomeOf = (b, a) => (!b.correct && a.correct ? "fixed" : b.correct && !a.correct ? "broken" : a.correct ? "both_right" : "both_wrong");

export async function render(view, rest) {
  const runs = await api(`${proj()}/runs?kind=train&limit=200`);
  const runId = rest[0] || "";
  const pick = h("select", { id: "report-run", onchange: () => (location.hash = `#/evaluation/${pick.value}`) },
    h("option", { value: "" }, "—"), runs.map((r) => h("option", { value: r.id, selected: r.id === runId }, `${r.id} (${r.spec.base_model || ""}, ${t("state_" + r.status)})`)));
  view.replaceChildren(h("h1", {}, t("page_evaluation")), h("div", { class: "row" }, h("label", {}, t("run"), " ", pick)));
  if (!runId) return;
  let rep;
  try { rep = await api(`${proj()}/reports/${runId}`); } catch (e) {
    if (e.status !== 404) throw e;
    const msg = h("div", { id: "report-msg" });
    view.append(h("p", {}, t("no_report")), canTrain() ? h("button", { id: "make-report", onclick: async (ev) => {
      ev.target.disabled = true; msg.replaceChildren(h("span", { class: "muted" }, t("loading")));
      try { await api(`${proj()}/reports`, { method: "POST", body: { run_id: runId, lang: lang() } }); render(view, rest); }
      catch (err) { msg.replaceChildren(errorBox(err)); ev.target.disabled = false; }
    } }, t("make_report")) : null, msg);
    return;
  }
  const d = rep.report;
  const before = new Map(((d.baseline && d.baseline.items) || []).map((i) => [i.item_id, i]));
  const items = ((d.tuned && d.tuned.items) || []).filter((i) => before.has(i.item_id)).map((a) => ({ a, b: before.get(a.item_id), outcome: outcomeOf(before.get(a.item_id), a) }));
  const cats = [...new Set(items.map((x) => x.a.category))].sort();
  const catSel = h("select", { id: "item-category" }, h("option", { value: "" }, t("all")), cats.map((c) => h("option", { value: c }, c)));
  const outSel = h("select", { id: "item-outcome" }, h("option", { value: "" }, t("all")), OUTCOMES.map((o) => h("option", { value: o }, t("outcome_" + o))));
  const search = h("input", { id: "item-search", placeholder: t("search") });
  const tbody = h("tbody");
  const count = h("span", { class: "muted", id: "item-count" });
  function draw() {
    const q = search.value.toLowerCase();
    const shown = items.filter((x) => (!catSel.value || x.a.category === catSel.value) && (!outSel.value || x.outcome === outSel.value) && (!q || (x.a.prompt + x.a.prediction + x.b.prediction).toLowerCase().includes(q)));
    count.textContent = `${shown.length}/${items.length}`;
    tbody.replaceChildren(...shown.slice(0, 500).map((x) => h("tr", { "data-outcome": x.outcome }, h("td", {}, x.a.item_id), h("td", {}, x.a.category), h("td", {}, t("outcome_" + x.outcome)),
      h("td", {}, x.a.prompt), h("td", {}, x.a.reference), h("td", {}, x.b.prediction), h("td", {}, x.a.prediction))));
  }
  [catSel, outSel].forEach((s) => s.addEventListener("change", draw)); search.addEventListener("input", draw);
  draw();
  const src = `/api/v1${proj()}/reports/${runId}/html`;
  view.append(h("h2", { id: "report-title" }, rep.title), h("p", {}, h("a", { href: src, target: "_blank" }, "HTML"), " · ", h("a", { href: `/api/v1${proj()}/reports/${runId}/json`, target: "_blank" }, "JSON"), " · ", h("a", { href: `/api/v1${proj()}/reports/${runId}/md`, target: "_blank" }, "Markdown")),
    h("iframe", { class: "report", id: "report-frame", src, title: rep.title }),
    h("h2", {}, t("items")), h("div", { class: "row" }, catSel, outSel, search, count),
    h("table", { id: "items" }, h("thead", {}, h("tr", {}, ["id", t("category"), t("outcome"), t("prompt"), t("reference"), t("before"), t("after")].map((x) => h("th", {}, x)))), tbody));
}
