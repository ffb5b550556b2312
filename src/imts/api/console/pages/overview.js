// Overview: the project's jobs (state, progress, ETA, resources held), the pool's use, recent activity.
import { api, h, proj, state, t, fmtDate, fmtDur, fmtMoney, fmtNum, onLeave } from "./common.js";

const LIMIT = 200; // the newest jobs; the API pages the rest (state filter narrows it)
const REFRESH_MS = 3000; // the page reloads its data while it is shown

function progressOf(job) {
  const p = job.progress || {};
  const frac = p.total ? Math.min(1, (p.done || 0) / p.total) : job.state === "succeeded" ? 1 : 0;
  const now = Date.now() / 1000;
  const eta = job.state === "running" && frac > 0 && job.started_ts ? ((now - job.started_ts) * (1 - frac)) / frac : null;
  return { frac, eta, label: p.total ? `${p.done || 0}/${p.total}${p.task ? " " + p.task : ""}` : "" };
}

const shown = () => (location.hash.slice(2).split(/[/?]/)[0] || "overview") === "overview";

export async function render(view, rest, params) {
  const stateFilter = params.state || "";
  const [jobs, pool, costs] = await Promise.all([
    api(`${proj()}/jobs?limit=${LIMIT}${stateFilter ? "&state=" + encodeURIComponent(stateFilter) : ""}`),
    api(`/tenants/${encodeURIComponent(state.tenant)}/pool`).catch(() => null),
    api(`/tenants/${encodeURIComponent(state.tenant)}/costs`).catch(() => null),
  ]);
  const priced = costs && costs.priced; // the pool has a price table: every job shows its cost
  const money = (x) => fmtMoney(x, costs.currency);
  let activity = null;
  try { // the last hour's entries, newest first (the audit query reads oldest first)
    const since = new Date(Date.now() - 3600e3).toISOString();
    activity = (await api(`/tenants/${encodeURIComponent(state.tenant)}/audit?limit=1000&since=${encodeURIComponent(since)}`)).slice(-15).reverse();
  } catch { /* needs view_audit */ }
  const counts = {};
  jobs.forEach((j) => (counts[j.state] = (counts[j.state] || 0) + 1));
  const filter = h("select", { id: "state-filter", onchange: () => (location.hash = `#/overview${filter.value ? "?state=" + filter.value : ""}`) },
    ["", "queued", "running", "paused", "succeeded", "failed", "cancelled"].map((s) => h("option", { value: s, selected: s === stateFilter }, s ? t("state_" + s) : t("all"))));
  const rows = jobs.map((j) => {
    const p = progressOf(j);
    const runId = j.data && (j.data.run_id || (j.data.result && j.data.result.run_id));
    const held = j.state === "running" ? `${j.workers}× ${j.request.cpus} CPU${j.request.gpus ? `, ${j.request.gpus} GPU` : ""}, ${fmtNum(j.request.memory_gb)} GB` : "—";
    return h("tr", { "data-job": j.id },
      h("td", {}, runId ? h("a", { href: `#/monitor?run=${runId}` }, j.name || j.id) : j.name || j.id, h("div", { class: "muted" }, j.id)),
      h("td", {}, j.kind), h("td", {}, h("span", { class: `state ${j.state}` }, t("state_" + j.state)), j.reason ? h("div", { class: "muted" }, j.reason) : null, j.error ? h("div", { class: "err" }, j.error) : null),
      h("td", {}, h("div", { class: "bar", title: p.label }, h("div", { style: `width:${Math.round(p.frac * 100)}%` })), h("span", { class: "muted" }, p.label)),
      h("td", { class: "num" }, fmtDur(p.eta)), h("td", {}, held), priced ? h("td", { class: "num cost" }, money(j.cost)) : null, h("td", {}, j.owner), h("td", {}, fmtDate(j.submitted_ts)));
  });
  const poolCard = pool ? h("div", { class: "card", id: "pool" }, h("h2", {}, t("pool")),
    h("table", {}, h("tr", {}, h("th", {}, t("node")), h("th", { class: "num" }, "CPU"), h("th", { class: "num" }, t("memory")), h("th", {}, "GPU")),
      pool.nodes.map((n) => h("tr", {}, h("td", {}, n.name), h("td", { class: "num" }, `${n.cpus_used}/${n.cpus}`),
        h("td", { class: "num" }, `${fmtNum(n.memory_gb_used)}/${fmtNum(n.memory_gb)} GB`), h("td", {}, Object.entries(n.gpus_free).map(([k, v]) => `${k}: ${v} ${t("free")}`).join(", ") || "—")))),
    h("p", {}, pool.tenants.map((s) => `${s.tenant}: ${t("share")} ${fmtNum(s.share * 100, 1)}% · ${t("state_running")} ${s.running} · ${t("state_queued")} ${s.queued}`).join(" | "))) : null;
  const actCard = activity ? h("div", { class: "card", id: "activity" }, h("h2", {}, t("recent_activity")),
    h("table", {}, activity.map((a) => h("tr", {}, h("td", {}, fmtDate(a.at)), h("td", {}, a.actor), h("td", {}, a.action), h("td", {}, [a.object_type, a.object_id].filter(Boolean).join(" ")))))) : null;
  if (!shown()) return; // the user moved on while the data loaded
  const timer = setTimeout(() => shown() && render(view, rest, params).catch(() => {}), REFRESH_MS);
  onLeave(() => clearTimeout(timer));
  view.replaceChildren(h("h1", {}, t("page_overview"), " · ", `${state.tenant}/${state.project}`),
    h("div", { class: "row" }, h("label", {}, t("state"), " ", filter),
      h("span", { class: "muted", id: "job-counts" }, Object.entries(counts).map(([k, v]) => `${t("state_" + k)} ${v}`).join(" · ") || t("no_jobs"))),
    priced ? h("p", { id: "costs" }, `${t("costs")}: `, costs.projects.map((c) => h("span", { class: c.project === state.project ? "strong" : "" }, `${c.project} ${money(c.cost)} · `)), h("b", {}, `${t("costs_tenant")} ${money(costs.total)}`)) : null,
    h("table", { id: "jobs" }, h("tr", {}, [t("job"), t("kind"), t("state"), t("progress"), "ETA", t("resources"), priced ? t("cost") : null, t("owner"), t("submitted")].filter(Boolean).map((x) => h("th", {}, x))), rows),
    h("div", { class: "grid", style: "margin-top:1rem" }, poolCard, actCard));
}
