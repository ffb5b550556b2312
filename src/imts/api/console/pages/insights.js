// Data insights: the latest analysis of a dataset version — the semantic map (one colour per cluster,
// rows with findings in red, the row's text on hover), the health score with its sub-scores, and the
// findings, each opening its rows here or in the Datasets page's preview. Researchers and admins can
// run a new analysis (an ``analyze`` job) for an intent.
import { api, h, proj, canTrain, t, lang, fmtNum, fmtDate, errorBox, onLeave } from "./common.js";

const NS = "http://www.w3.org/2000/svg";
const RED = "#d0021b";
// Cluster colours: none of them red, so a flagged row stands out; more clusters get evenly spread hues.
const PALETTE = ["#2f5fd0", "#1b7f3b", "#b06d00", "#7b3fb5", "#00838f", "#8d6e63", "#546e7a", "#9e9d24", "#0277bd", "#6a1b9a", "#2e7d32", "#ef8f00"];
export const clusterColor = (i) => (i < PALETTE.length ? PALETTE[i] : `hsl(${(i * 137.5 + 200) % 360 | 0} 55% 42%)`);
const ROWS_PAGE = 10, LINK_IDS = 200, POLL_MS = 2000, MAX_VERSIONS = 100;
const sq = (id) => `'${String(id).replaceAll("'", "''")}'`; // one SQL string literal for the rows filter
const msg = (o, base) => (lang() === "zh" ? o[base + "_zh"] : o[base + "_en"]) || o[base + "_en"] || "";
const svgEl = (tag, attrs) => { const e = document.createElementNS(NS, tag); Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v)); return e; };

export async function render(view, rest, params) {
  const versions = (await api(`${proj()}/datasets`)).sort((a, b) => b.number - a.number);
  // Each version's analyses (newest first): the pickers mark them, and the default is the version
  // analysed last, in the dataset named by the link or else the one analysed last.
  const lists = await Promise.all(versions.slice(0, MAX_VERSIONS).map((v) => api(`${proj()}/datasets/refs/${encodeURIComponent(`${v.dataset}@${v.number}`)}/analyses`).catch(() => [])));
  const analyses = new Map(versions.slice(0, MAX_VERSIONS).map((v, i) => [`${v.dataset}@${v.number}`, lists[i]]));
  const newest = (vs) => vs.filter((v) => (analyses.get(`${v.dataset}@${v.number}`) || []).length)
    .sort((a, b) => String(analyses.get(`${b.dataset}@${b.number}`)[0].created_at).localeCompare(String(analyses.get(`${a.dataset}@${a.number}`)[0].created_at)))[0];
  const names = [...new Set(versions.map((v) => v.dataset))].sort();
  const dataset = rest[0] && names.includes(rest[0]) ? rest[0] : (newest(versions) || versions[0] || {}).dataset;
  view.replaceChildren(h("h1", {}, t("page_insights")));
  if (!dataset) { view.append(h("p", { class: "muted" }, t("no_datasets"))); return; }
  const mine = versions.filter((v) => v.dataset === dataset);
  const ref = params.ref || `${dataset}@${(newest(mine) || mine[0]).number}`;
  const list = analyses.get(ref) || [];
  const counts = mine.map((v) => analyses.get(`${dataset}@${v.number}`) || []);
  const go = (r, id) => (location.hash = `#/insights/${encodeURIComponent(dataset)}?ref=${encodeURIComponent(r)}${id ? "&id=" + id : ""}`);
  const dSel = h("select", { id: "insights-dataset", onchange: () => (location.hash = `#/insights/${encodeURIComponent(dSel.value)}`) }, names.map((n) => h("option", { value: n, selected: n === dataset }, n)));
  const vSel = h("select", { id: "insights-version", onchange: () => go(vSel.value) }, mine.map((v, i) => h("option", { value: `${dataset}@${v.number}`, selected: `${dataset}@${v.number}` === ref },
    `@${v.number} · ${v.operation} · ${fmtNum(v.num_rows)} ${t("rows")}${counts[i].length ? ` · ${t("analyses_n")}: ${counts[i].length}` : ""}`)));
  const aSel = list.length > 1 ? h("select", { id: "insights-analysis", onchange: () => go(ref, aSel.value) }, list.map((a) => h("option", { value: a.id, selected: a.id === params.id },
    `${fmtDate(a.created_at)} · ${a.intent.slice(0, 50)} · ${t("verdict_" + a.verdict)}`))) : null;
  view.append(h("div", { class: "row" }, h("label", {}, t("dataset"), " ", dSel), h("label", {}, t("version"), " ", vSel), aSel ? h("label", {}, t("analysis"), " ", aSel) : null),
    canTrain() ? runCard(ref, list[0], (id) => go(ref, id)) : null);
  const body = h("div", { id: "insights" });
  view.append(body);
  if (!list.length) { body.append(h("p", { class: "muted", id: "no-analysis" }, t("no_analysis"))); return; }
  const a = await api(`${proj()}/datasets/refs/${encodeURIComponent(ref)}/analysis${params.id ? "?id=" + encodeURIComponent(params.id) : ""}`);
  const report = `/api/v1${proj()}/datasets/refs/${encodeURIComponent(ref)}/analysis/report?format=html&id=${a.id}`;
  const rowsBox = h("div", { id: "finding-rows" });
  const flagged = new Map(); // row id -> the findings behind it
  a.findings.forEach((f, i) => f.row_ids.forEach((id) => flagged.set(id, [...(flagged.get(id) || []), i])));
  const map = a.semantic && a.semantic.points.length ? semanticMap(a, ref, flagged) : null;
  const created = (list.find((x) => x.id === a.id) || {}).created_at;
  body.append(...[
    h("p", { id: "analysis-summary" }, h("b", {}, a.spec.intent), " · ", `${t("task")}: ${a.spec.task || "—"}`, " · ",
      h("span", { class: `state ${a.fit.verdict === "refused" ? "failed" : "succeeded"}` }, `${t("verdict_" + a.fit.verdict)} · ${t("fit")} ${a.fit.score.toFixed(2)}`),
      " · ", `${fmtNum(a.profile ? a.profile.rows : a.fit.sampled)} ${t("rows")}`, " · ", fmtDate(created), " · ", h("a", { href: report, target: "_blank", id: "analysis-report" }, t("full_report"))),
    a.fit.verdict === "refused" ? h("p", { class: "err" }, `${msg(a.fit, "reason")}. ${msg(a.fit, "suggestion")}`) : null,
    h("div", { class: "insights-top" }, map ? map.card : h("div", { class: "card muted" }, t("no_map")), healthCard(a.health)),
    h("h2", {}, t("findings"), ` (${a.findings.length})`), findingsTable(a.findings, (f) => { showRows(f, ref, dataset, rowsBox); map && map.highlight(f); }), rowsBox].filter(Boolean));
}

/** Start an analysis job for the version and follow it until it has stored its analysis. */
function runCard(ref, last, done) {
  const intent = h("textarea", { id: "analyze-intent", rows: 2, cols: 70, placeholder: t("intent_hint") }, last ? last.intent : "");
  const sample = h("input", { id: "analyze-sample", type: "number", min: 10, max: 200000, value: 2000, style: "width:7em" });
  const out = h("div", { id: "analyze-msg" });
  const btn = h("button", { id: "analyze", onclick: async () => {
    if (!intent.value.trim()) { out.replaceChildren(h("p", { class: "err" }, t("intent_empty"))); return; }
    btn.disabled = true;
    let alive = true;
    onLeave(() => (alive = false));
    try {
      const body = { intent: intent.value.trim(), sample: Number(sample.value) || 2000, lang: lang(), job: { name: `analyze ${ref}` } };
      let job = await api(`${proj()}/datasets/refs/${encodeURIComponent(ref)}/analyses/jobs`, { method: "POST", body });
      while (alive && !["succeeded", "failed", "cancelled"].includes(job.state)) {
        out.replaceChildren(h("p", { class: "muted" }, `${job.id} · ${t("state_" + job.state)}${job.progress && job.progress.task ? " · " + job.progress.task : ""}`));
        await new Promise((r) => setTimeout(r, POLL_MS));
        job = (await api(`${proj()}/jobs/${job.id}`)).job;
      }
      if (!alive) return;
      const res = job.data && job.data.result;
      if (job.state !== "succeeded" || !res) throw new Error(`${job.id}: ${t("state_" + job.state)} ${job.error || ""}`);
      out.replaceChildren(h("p", { class: res.refused ? "err" : "ok" }, `${job.id} · ${t("verdict_" + res.verdict)}`));
      done(res.analysis);
    } catch (e) { out.replaceChildren(errorBox(e)); } finally { btn.disabled = false; }
  } }, t("run_analysis"));
  return h("details", { class: "card", id: "analyze-card" }, h("summary", {}, t("run_analysis")),
    h("p", {}, h("label", {}, t("intent"), h("br"), intent)), h("div", { class: "row" }, h("label", {}, t("map_sample"), " ", sample), btn), out);
}

function healthCard(health) {
  if (!health) return h("div", { class: "card", id: "health" }, h("h2", {}, t("health")), h("p", { class: "muted" }, "—"));
  const tone = (s) => (s >= 80 ? "#1b7f3b" : s >= 60 ? "#b06d00" : RED);
  return h("div", { class: "card", id: "health" }, h("h2", {}, t("health")),
    h("div", { class: "health-score", id: "health-score", style: `color:${tone(health.score)}` }, fmtNum(health.score, 1)),
    h("table", { id: "sub-scores" }, health.sub_scores.map((s) => h("tr", { "data-sub": s.name },
      h("td", {}, t("sub_" + s.name)), h("td", { class: "num" }, fmtNum(s.score, 1)),
      h("td", {}, h("div", { class: "bar" }, h("div", { style: `width:${Math.max(0, Math.min(100, s.score))}%;background:${tone(s.score)}` })), h("div", { class: "muted" }, msg(s, "reason")))))),
    health.balance ? h("p", { class: "muted" }, `${t("categories_from")}: ${t("source_" + health.balance.source)}`) : null);
}

function findingsTable(findings, open) {
  if (!findings.length) return h("p", { class: "muted", id: "findings" }, t("no_findings"));
  const order = { severe: 0, warning: 1, info: 2 };
  return h("table", { id: "findings" }, h("tr", {}, [t("kind"), t("severity"), t("rows_h"), t("action"), t("message"), ""].map((x) => h("th", {}, x))),
    [...findings].sort((x, y) => order[x.severity] - order[y.severity]).map((f) => h("tr", { "data-kind": f.kind, class: `sev-${f.severity}` },
      h("td", {}, t("kind_" + f.kind)), h("td", {}, h("span", { class: `sev ${f.severity}` }, t("sev_" + f.severity))),
      h("td", { class: "num" }, fmtNum(f.row_ids.length), f.share !== null && f.share !== undefined ? h("div", { class: "muted" }, `${fmtNum(f.share * 100, 1)}%`) : null),
      h("td", {}, t("act_" + f.action), f.params && f.params.category ? h("div", { class: "muted" }, f.params.category) : null),
      h("td", { class: "message" }, msg(f, "message")),
      h("td", {}, f.row_ids.length ? h("button", { class: "secondary", "data-rows": f.kind, onclick: () => open(f) }, t("show_rows")) : null))));
}

/** The finding's rows, a page at a time (the rows API filtered to that page's ids), and a link to
 * the Datasets page's preview filtered to them. */
function showRows(f, ref, dataset, box) {
  let page = 0;
  const pages = Math.ceil(f.row_ids.length / ROWS_PAGE);
  const ids = f.row_ids.slice(0, LINK_IDS);
  const where = `id IN (${ids.map(sq).join(", ")})`;
  const link = h("a", { id: "rows-in-datasets", href: `#/datasets/${encodeURIComponent(dataset)}?ref=${encodeURIComponent(ref)}&where=${encodeURIComponent(where)}` },
    t("open_in_datasets"), f.row_ids.length > LINK_IDS ? ` (${t("first_n", { n: LINK_IDS })})` : "");
  const table = h("div");
  async function load() {
    const q = new URLSearchParams({ limit: String(ROWS_PAGE), where: `id IN (${f.row_ids.slice(page * ROWS_PAGE, (page + 1) * ROWS_PAGE).map(sq).join(", ")})` });
    try {
      const r = await api(`${proj()}/datasets/refs/${encodeURIComponent(ref)}/rows?${q}`);
      const cols = [...new Set(r.rows.flatMap((x) => Object.keys(x)))].filter((c) => c !== "meta");
      table.replaceChildren(h("div", { class: "row" }, h("button", { class: "secondary", disabled: page <= 0, onclick: () => { page--; load(); } }, "‹"),
        `${t("page")} ${page + 1}/${pages} · ${fmtNum(f.row_ids.length)} ${t("rows")}`, h("button", { class: "secondary", disabled: page >= pages - 1, onclick: () => { page++; load(); } }, "›")),
        h("table", { id: "finding-rows-table" }, h("tr", {}, cols.map((c) => h("th", {}, c))),
          r.rows.map((x) => h("tr", { "data-id": x.id }, cols.map((c) => h("td", {}, typeof x[c] === "object" && x[c] !== null ? JSON.stringify(x[c]) : String(x[c] ?? "")))))));
    } catch (e) { table.replaceChildren(errorBox(e)); }
  }
  box.replaceChildren(h("h2", { "data-kind": f.kind }, `${t("kind_" + f.kind)} — ${t("rows")}`), h("p", {}, link), table);
  load();
  box.scrollIntoView({ block: "start" });
}

/** The 2-D projection as an SVG scatter: a circle per sampled row, coloured by cluster, red when a
 * finding names the row; hovering shows the row's id, cluster and (fetched once) its text. */
function semanticMap(a, ref, flagged) {
  const sem = a.semantic;
  const W = 640, H = 440, PAD = 16;
  const xs = sem.points.map((p) => p[0]), ys = sem.points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => PAD + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * PAD), sy = (y) => H - PAD - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * PAD);
  const clusters = new Map(sem.clusters.map((c) => [c.id, c]));
  const colorOf = new Map([...clusters.keys()].sort((p, q) => p - q).map((id, i) => [id, clusterColor(i)]));
  const svg = svgEl("svg", { id: "semantic-map", width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "scatter" });
  const tip = h("div", { class: "tip", id: "map-tip", hidden: true });
  const texts = new Map();
  const circles = sem.points.map(([x, y, c], i) => {
    const id = sem.ids[i];
    const bad = flagged.has(id);
    const dot = svgEl("circle", { cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: bad ? 4 : 3.2, fill: bad ? RED : colorOf.get(c) || "#999",
      "fill-opacity": bad ? 0.95 : 0.7, "data-id": id, "data-cluster": c, "data-flagged": bad ? "1" : "0" });
    dot.addEventListener("mouseenter", async (ev) => {
      const cl = clusters.get(c);
      const head = `${id} · ${cl ? cl.label : c}${bad ? " · " + flagged.get(id).map((k) => t("kind_" + a.findings[k].kind)).join(", ") : ""}`;
      const place = () => { const box = svg.getBoundingClientRect(); tip.style.left = `${ev.clientX - box.left + 12}px`; tip.style.top = `${ev.clientY - box.top + 12}px`; };
      tip.hidden = false; tip.dataset.for = id; tip.replaceChildren(h("b", {}, head)); place();
      if (!texts.has(id)) texts.set(id, api(`${proj()}/datasets/refs/${encodeURIComponent(ref)}/rows?limit=1&where=${encodeURIComponent("id = " + sq(id))}`).then((r) => r.rows[0]).catch(() => null));
      const row = await texts.get(id);
      if (tip.hidden || tip.dataset.for !== id) return;
      tip.append(h("div", { class: "tip-text" }, rowText(row)));
    });
    dot.addEventListener("mouseleave", () => { tip.hidden = true; tip.dataset.for = ""; });
    return dot;
  });
  // Flagged rows last, so no cluster's dots hide them.
  circles.filter((d) => d.dataset.flagged === "0").concat(circles.filter((d) => d.dataset.flagged === "1")).forEach((d) => svg.append(d));
  const legend = h("ul", { class: "legend", id: "map-legend" }, sem.clusters.map((c) => h("li", { "data-cluster": c.id },
      h("span", { class: "swatch", style: `background:${colorOf.get(c.id)}` }), `${c.label} · ${fmtNum(c.share * 100, 1)}%${c.category ? " · " + c.category : ""}`)),
    h("li", {}, h("span", { class: "swatch", style: `background:${RED}` }), t("rows_with_findings"), ` (${circles.filter((d) => d.dataset.flagged === "1").length})`));
  const note = h("p", { class: "muted", id: "map-note" }, `${fmtNum(sem.sample)} ${t("rows_sampled")} · ${sem.clusters.length} ${t("clusters")}`,
    Object.keys(sem.coverage || {}).length ? ` · ${t("coverage")}: ${Object.entries(sem.coverage).map(([k, v]) => `${k} ${fmtNum(v * 100, 1)}%`).join(", ")}` : "");
  const card = h("div", { class: "card map-card" }, h("h2", {}, t("semantic_map")), h("div", { class: "map-wrap" }, svg, tip), legend, note);
  /** Red only for the rows of one finding (null: every finding's rows). */
  function highlight(f) {
    const only = f ? new Set(f.row_ids) : null;
    circles.forEach((d) => {
      const bad = only ? only.has(d.dataset.id) : flagged.has(d.dataset.id);
      d.dataset.flagged = bad ? "1" : "0";
      d.setAttribute("fill", bad ? RED : colorOf.get(Number(d.dataset.cluster)) || "#999");
      d.setAttribute("r", bad ? 4 : 3.2);
      d.setAttribute("fill-opacity", bad ? 0.95 : 0.7);
      if (bad) svg.append(d);
    });
  }
  return { card, highlight };
}

function rowText(row) {
  if (!row) return "—";
  const text = row.messages ? row.messages.map((m) => `${m.role}: ${m.content}`).join("\n") : [row.prompt ?? row.text, row.response ?? row.chosen ?? row.label].filter(Boolean).join("\n→ ");
  return text.length > 400 ? text.slice(0, 400) + "…" : text;
}
