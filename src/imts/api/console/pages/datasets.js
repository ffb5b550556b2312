// Datasets: chunked, resumable upload with a progress bar; versions; paged preview with a filter;
// per-field statistics; the diff of two versions; the lineage graph (versions, operations, runs, models).
import { api, h, proj, canTrain, t, fmtNum, fmtDate, errorBox } from "./common.js";

const CHUNK = 4 * 1024 * 1024;
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (blob) => hex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));

/** Upload ``file`` in chunks; an upload id kept in localStorage resumes after a broken connection. */
async function upload(file, name, onProgress) {
  const digest = await sha256(file);
  const key = `imts.upload.${proj()}.${digest}`;
  let up = null;
  const known = localStorage.getItem(key);
  if (known) { try { up = await api(`${proj()}/uploads/${known}`); } catch { up = null; } }
  if (!up) up = await api(`${proj()}/uploads`, { method: "POST", body: { file_name: file.name, size: file.size, sha256: digest, chunk_size: CHUNK } });
  localStorage.setItem(key, up.id);
  const missing = up.missing ?? [...Array(up.chunks ?? Math.ceil(file.size / CHUNK)).keys()];
  const total = up.chunks ?? Math.ceil(file.size / CHUNK);
  let done = total - missing.length;
  onProgress(done / total);
  for (const n of missing) {
    const piece = file.slice(n * CHUNK, (n + 1) * CHUNK);
    await api(`${proj()}/uploads/${up.id}/chunks/${n}`, { method: "PUT", raw: true, body: piece,
      headers: { "Content-Type": "application/octet-stream", "X-Chunk-SHA256": await sha256(piece) } });
    onProgress(++done / total);
  }
  const v = await api(`${proj()}/uploads/${up.id}/complete`, { method: "POST", body: { name } });
  localStorage.removeItem(key);
  return v;
}

let lastUpload = null; // the last upload's outcome, still shown after the page moves to its dataset

function uploadCard(after) {
  const file = h("input", { type: "file", id: "upload-file", accept: ".jsonl,.json,.csv,.parquet,.txt" });
  const name = h("input", { id: "upload-name", placeholder: t("dataset_name") });
  const bar = h("div", { style: `width:${lastUpload ? 100 : 0}%` });
  const msg = h("div", { id: "upload-msg" }, lastUpload);
  const btn = h("button", { id: "upload", onclick: async () => {
    if (!file.files[0]) return;
    btn.disabled = true; msg.replaceChildren();
    try {
      const v = await upload(file.files[0], name.value || file.files[0].name.replace(/\.[^.]+$/, ""), (f) => (bar.style.width = `${Math.round(f * 100)}%`));
      lastUpload = h("p", { class: "ok" }, `${t("uploaded")} ${v.dataset}@${v.number} · ${fmtNum(v.num_rows)} ${t("rows")}`);
      msg.replaceChildren(lastUpload);
      after(v);
    } catch (e) { msg.replaceChildren(errorBox(e)); } finally { btn.disabled = false; }
  } }, t("upload"));
  return h("div", { class: "card" }, h("h2", {}, t("upload")), h("div", { class: "row" }, file, name, btn), h("div", { class: "bar", id: "upload-bar" }, bar), msg);
}

export async function render(view, rest, params) {
  const versions = await api(`${proj()}/datasets`);
  const byName = {};
  versions.forEach((v) => (byName[v.dataset] = byName[v.dataset] || []).push(v));
  const current = rest[0] || Object.keys(byName)[0];
  const list = h("table", { id: "datasets" }, h("tr", {}, [t("dataset"), t("versions"), t("rows"), t("format")].map((x) => h("th", {}, x))),
    Object.entries(byName).map(([n, vs]) => h("tr", {}, h("td", {}, h("a", { href: `#/datasets/${encodeURIComponent(n)}` }, n)), h("td", {}, vs.length),
      h("td", { class: "num" }, fmtNum(vs.at(-1).num_rows)), h("td", {}, vs.at(-1).format))));
  const parts = [h("h1", {}, t("page_datasets")), canTrain() ? uploadCard((v) => (location.hash = `#/datasets/${encodeURIComponent(v.dataset)}`)) : null, list];
  view.replaceChildren(...parts);
  if (!current || !byName[current]) return;
  const vs = [...byName[current]].sort((a, b) => a.number - b.number);
  const ref = params.ref || `${current}@${vs.at(-1).number}`;
  const detail = h("div", { id: "dataset-detail" });
  view.append(detail);
  const vTable = h("table", { id: "versions" }, h("tr", {}, [t("version"), t("operation"), t("rows"), t("splits"), t("created")].map((x) => h("th", {}, x))),
    vs.map((v) => h("tr", {}, h("td", {}, h("a", { href: `#/datasets/${encodeURIComponent(current)}?ref=${current}@${v.number}` }, `@${v.number}`)), h("td", {}, v.operation),
      h("td", { class: "num" }, fmtNum(v.num_rows)), h("td", {}, Object.keys((v.stats || {}).splits || {}).join(", ")), h("td", {}, fmtDate(v.created_at)))));
  const splitBtn = canTrain() ? h("button", { id: "split", class: "secondary", onclick: async () => {
    try { const v = await api(`${proj()}/datasets/refs/${encodeURIComponent(ref)}/split`, { method: "POST", body: { ratios: [0.8, 0.1, 0.1], seed: 0 } });
      location.hash = `#/datasets/${encodeURIComponent(current)}?ref=${current}@${v.number}`; } catch (e) { detail.prepend(errorBox(e)); }
  } }, t("split_train_val_test")) : null;
  // Preview: paged, filtered by the API's `where` expression.
  // A filter may come with the link (the Data insights page opens a finding's rows here).
  const where = h("input", { id: "where", placeholder: "category = 'addition'", size: 40, value: params.where || null });
  const previewBox = h("div", { id: "preview" });
  let page = 1;
  async function preview() {
    try {
      const q = new URLSearchParams({ limit: "10", page: String(page) });
      if (where.value) q.set("where", where.value);
      const r = await api(`${proj()}/datasets/refs/${encodeURIComponent(ref)}/rows?${q}`);
      const cols = [...new Set(r.rows.flatMap((x) => Object.keys(x)))];
      const pages = Math.max(1, Math.ceil(r.total / r.limit));
      previewBox.replaceChildren(h("div", { class: "row" }, h("button", { class: "secondary", disabled: page <= 1, onclick: () => { page--; preview(); } }, "‹"),
        `${t("page")} ${page}/${pages} · ${fmtNum(r.total)} ${t("rows")}`, h("button", { class: "secondary", disabled: page >= pages, onclick: () => { page++; preview(); } }, "›")),
        h("table", {}, h("tr", {}, cols.map((c) => h("th", {}, c))), r.rows.map((x) => h("tr", {}, cols.map((c) => h("td", {}, typeof x[c] === "object" ? JSON.stringify(x[c]) : String(x[c] ?? "")))))));
    } catch (e) { previewBox.replaceChildren(errorBox(e)); }
  }
  const stats = await api(`${proj()}/datasets/refs/${encodeURIComponent(ref)}/stats`).catch((e) => e);
  const statsTable = stats instanceof Error ? errorBox(stats) : h("table", { id: "stats" },
    h("tr", {}, [t("field"), t("type"), t("count"), t("nulls"), t("distinct"), t("length"), t("top_values")].map((x) => h("th", {}, x))),
    Object.entries(stats.fields).map(([f, s]) => h("tr", {}, h("td", {}, f), h("td", {}, s.type), h("td", { class: "num" }, fmtNum(s.count)), h("td", { class: "num" }, fmtNum(s.nulls)),
      h("td", { class: "num" }, fmtNum(s.distinct)), h("td", {}, s.length ? `${s.length.min}–${s.length.max} (p50 ${s.length.p50}, p95 ${s.length.p95})` : "—"),
      h("td", {}, (s.top || []).slice(0, 5).map(([v, n]) => `${String(v).slice(0, 30)} (${n})`).join(", ")))));
  // Diff of two versions.
  const aSel = h("select", { id: "diff-a" }, vs.map((v) => h("option", { value: `${current}@${v.number}`, selected: v === vs.at(-2) }, `@${v.number}`)));
  const bSel = h("select", { id: "diff-b" }, vs.map((v) => h("option", { value: `${current}@${v.number}`, selected: v === vs.at(-1) }, `@${v.number}`)));
  const diffBox = h("div", { id: "diff" });
  const diffBtn = h("button", { class: "secondary", id: "diff-run", onclick: async () => {
    try {
      const d = await api(`${proj()}/datasets/refs/${encodeURIComponent(aSel.value)}/diff/${encodeURIComponent(bSel.value)}?by=content`);
      diffBox.replaceChildren(h("p", {}, `${t("added")} ${d.rows.added} · ${t("removed")} ${d.rows.removed} · ${t("changed")} ${d.rows.changed} · ${t("unchanged")} ${d.rows.unchanged}`),
        h("table", {}, Object.entries(d.shift).map(([f, s]) => h("tr", {}, h("td", {}, f), h("td", {}, JSON.stringify(s).slice(0, 200))))));
    } catch (e) { diffBox.replaceChildren(errorBox(e)); }
  } }, t("diff"));
  const lineage = await api(`${proj()}/datasets/${encodeURIComponent(current)}/lineage`).catch(() => null);
  detail.replaceChildren(h("h2", {}, `${current} — ${ref}`), vTable, h("div", { class: "row" }, splitBtn),
    h("h2", {}, t("preview")), h("div", { class: "row" }, where, h("button", { class: "secondary", id: "filter", onclick: () => { page = 1; preview(); } }, t("filter"))), previewBox,
    h("h2", {}, t("statistics")), statsTable, h("h2", {}, t("diff")), h("div", { class: "row" }, aSel, "→", bSel, diffBtn), diffBox,
    h("h2", {}, t("lineage")), lineage ? lineageGraph(lineage) : null);
  preview();
}

/** Versions left to right by depth; operations on the edges; runs and models under each version. */
function lineageGraph(lin) {
  const NS = "http://www.w3.org/2000/svg";
  const s = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v)); if (text) e.textContent = text; return e; };
  const depth = {}, pos = {};
  const byId = Object.fromEntries(lin.versions.map((v) => [v.id, v]));
  const d = (v) => (depth[v.id] ??= v.parents.filter((p) => byId[p]).length ? 1 + Math.max(...v.parents.filter((p) => byId[p]).map((p) => d(byId[p]))) : 0);
  lin.versions.forEach(d);
  const cols = {};
  lin.versions.forEach((v) => { const c = depth[v.id]; cols[c] = (cols[c] || 0) + 1; pos[v.id] = [30 + c * 200, 30 + (cols[c] - 1) * 110]; });
  const height = 60 + Math.max(...Object.values(cols)) * 110;
  const svg = s("svg", { class: "lineage", id: "lineage", width: 60 + (Math.max(...Object.keys(cols).map(Number)) + 1) * 200, height });
  lin.versions.forEach((v) => v.parents.filter((p) => pos[p]).forEach((p) => {
    svg.append(s("line", { x1: pos[p][0] + 140, y1: pos[p][1] + 18, x2: pos[v.id][0], y2: pos[v.id][1] + 18, stroke: "#8a94a6" }));
  }));
  lin.versions.forEach((v) => {
    const [x, y] = pos[v.id];
    svg.append(s("rect", { x, y, width: 140, height: 36, rx: 5, fill: "#dbe8ff", stroke: "#5b8def" }), s("text", { x: x + 6, y: y + 15 }, v.ref), s("text", { x: x + 6, y: y + 30, fill: "#555" }, `${v.operation} · ${v.rows}`));
    [...v.runs.map((r) => `▶ ${r.kind} ${r.id}`), ...v.models.map((m) => `◆ ${m}`)].slice(0, 4).forEach((line, i) => svg.append(s("text", { x: x + 6, y: y + 52 + i * 13 }, line)));
  });
  return svg;
}
