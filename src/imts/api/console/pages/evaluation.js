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
    view.append(h("p", {}, t("no_report")));
    if (!canTrain()) return;
    // The evaluations to compare, chosen here and sent explicitly: the server pairs only whole
    // evaluations by itself, and one limited to N items (as launched from this console) must count too.
    const run = runs.find((r) => r.id === runId);
    const evals = run ? await api(`${proj()}/runs?kind=eval&status=succeeded&limit=1000`).catch(() => []) : [];
    const same = evals.filter((e) => e.dataset_version_id === run.dataset_version_id);
    const tunedEvals = same.filter((e) => run.model_version_id && e.model_version_id === run.model_version_id);
    const baseEvals = same.filter((e) => !e.model_version_id && e.base_model_id === run.base_model_id);
    const tools = (e) => (e.spec.tools || []).slice().sort().join(", ");
    const label = (e) => `${e.id} (${e.split || "—"}, ${e.spec.max_items ? e.spec.max_items + " " + t("items_n") : t("all_items")}${tools(e) ? ", " + t("tools") + " " + tools(e) : ""}, ${(e.created_at || "").slice(0, 16).replace("T", " ")})`;
    const choose = (id, list) => h("select", { id }, h("option", { value: "" }, t("auto_eval")), list.map((e) => h("option", { value: e.id }, label(e))));
    const tunedSel = choose("report-tuned", tunedEvals), baseSel = choose("report-baseline", baseEvals);
    // Default: the newest evaluation of the run's model, and the newest of the base model on the same items.
    const tuned = tunedEvals[0];
    const base = tuned ? baseEvals.find((e) => e.split === tuned.split && (e.spec.max_items || null) === (tuned.spec.max_items || null) && tools(e) === tools(tuned)) : baseEvals[0];
    if (tuned) tunedSel.value = tuned.id;
    if (base) baseSel.value = base.id;
    view.append(h("div", { class: "row" }, h("label", {}, t("baseline_eval"), " ", baseSel), h("label", {}, t("tuned_eval"), " ", tunedSel)),
      h("button", { id: "make-report", onclick: async (ev) => {
        ev.target.disabled = true; msg.replaceChildren(h("span", { class: "muted" }, t("loading")));
        const body = { run_id: runId, lang: lang() };
        if (baseSel.value) body.baseline = baseSel.value;
        if (tunedSel.value) body.tuned = tunedSel.value;
        try { await api(`${proj()}/reports`, { method: "POST", body }); render(view, rest); }
        catch (err) { msg.replaceChildren(errorBox(err)); ev.target.disabled = false; }
      } }, t("make_report")), msg);
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
