// Training monitor: live curves over server-sent events, up to 20 runs overlaid, min/max-per-bucket
// downsampling from the API (no spike hidden), zoom that reloads the range at full resolution, the
// watchdog's interventions marked on the curves, and the run's job logs streamed.
import { api, h, proj, t, fmtNum, fmtDate, onLeave, errorBox } from "./common.js";
import uPlot from "../vendor/uPlot.esm.js";

export const KEYS = ["loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "mfu", "peak_mem_mb"];
const MAX_RUNS = 20, BUCKETS = 1000;
const COLORS = ["#2f5fd0", "#d0342c", "#1b7f3b", "#b06d00", "#7b3fb5", "#00838f", "#c2185b", "#5d4037", "#546e7a", "#9e9d24"];
const INTERVENTIONS = new Set(["rollback", "lr_reduced", "skip_batch", "early_stop", "watchdog", "nan", "spike"]);

/** One chart per metric key; each holds, per run, its points [steps[], values[]] merged by step. */
class Chart {
  constructor(key, el, onZoom) {
    this.key = key; this.series = new Map(); this.marks = []; this.onZoom = onZoom;
    this.el = el; this.plot = null; this.dirty = false;
  }
  set(runId, pts) { this.series.set(runId, pts); this.schedule(); }
  append(runId, step, value) {
    const s = this.series.get(runId) || [[], []];
    if (s[0].length && step <= s[0].at(-1)) return;
    s[0].push(step); s[1].push(value); this.series.set(runId, s); this.schedule();
  }
  schedule() { if (!this.dirty) { this.dirty = true; requestAnimationFrame(() => { this.dirty = false; this.draw(); }); } }
  draw() {
    const runs = [...this.series.keys()];
    if (!this.points()) { // nothing logged yet (a run that just started): a title, and the plot later
      this.el.replaceChildren(h("div", { class: "muted" }, `${this.key} — ${t("no_points")}`));
      return;
    }
    if (!this.plot) this.el.replaceChildren();
    const data = uPlot.join(runs.map((r) => this.series.get(r)));
    if (this.plot && this.plot.series.length === runs.length + 1) { this.plot.setData(data, !this.zoomed); return; }
    this.plot?.destroy();
    const width = Math.max(360, this.el.clientWidth || 560);
    this.plot = new uPlot({
      width, height: 240, title: this.key,
      scales: { x: { time: false } },
      cursor: { drag: { x: true, y: false } },
      series: [{ label: "step" }, ...runs.map((r, i) => ({ label: r, stroke: COLORS[i % COLORS.length], width: 1.2, spanGaps: true }))],
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 2) return;
          const lo = Math.floor(u.posToVal(u.select.left, "x")), hi = Math.ceil(u.posToVal(u.select.left + u.select.width, "x"));
          this.zoomed = true; this.onZoom(lo, hi);
        }],
        draw: [(u) => { // the watchdog's interventions: a red dashed line at each step
          const ctx = u.ctx; ctx.save(); ctx.strokeStyle = "#d0342c"; ctx.setLineDash([4, 3]);
          for (const m of this.marks) {
            const x = u.valToPos(m.step, "x", true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
          }
          ctx.restore();
        }],
      },
    }, data, this.el);
    this.el.dataset.points = String(runs.reduce((n, r) => n + this.series.get(r)[0].length, 0));
  }
  points() { return [...this.series.values()].reduce((n, s) => n + s[0].length, 0); }
}

const metricsUrl = (runId, extra) => `${proj()}/runs/${runId}/metrics?${KEYS.map((k) => "key=" + k).join("&")}&${extra}`;

export async function render(view, _rest, params) {
  const runs = await api(`${proj()}/runs?kind=train&limit=200`);
  const chosen = (params.run || (runs[0] ? runs[0].id : "")).split(",").filter(Boolean).slice(0, MAX_RUNS);
  const picker = h("table", { id: "run-picker" }, h("tr", {}, [ "", t("run"), t("state"), t("base_model"), t("dataset"), "loss"].map((x) => h("th", {}, x))),
    runs.map((r) => h("tr", {}, h("td", {}, h("input", { type: "checkbox", value: r.id, checked: chosen.includes(r.id), "data-run": r.id, onchange: pick })),
      h("td", {}, r.id), h("td", {}, h("span", { class: `state ${r.status}` }, t("state_" + r.status))), h("td", {}, r.spec.base_model || ""), h("td", {}, r.spec.data || ""),
      h("td", { class: "num" }, fmtNum(r.summary.final_loss ?? r.summary.loss)))));
  function pick() {
    const ids = [...picker.querySelectorAll("input:checked")].map((x) => x.value);
    if (ids.length > MAX_RUNS) { this.checked = false; return; }
    location.hash = `#/monitor?run=${ids.join(",")}`;
  }
  const chartsEl = h("div", { class: "charts", id: "charts" });
  const status = h("p", { class: "muted", id: "monitor-status" });
  const logs = h("pre", { class: "log", id: "logs" });
  const reset = h("button", { class: "secondary", id: "zoom-reset", onclick: () => loadAll("") }, t("zoom_reset"));
  const events = h("ul", { id: "run-events" });
  view.replaceChildren(h("h1", {}, t("page_monitor")), h("details", { open: !params.run }, h("summary", {}, t("pick_runs", { n: MAX_RUNS })), picker),
    h("div", { class: "row" }, status, reset), chartsEl, h("h2", {}, t("events")), events, h("h2", {}, t("logs")), logs);
  if (!chosen.length) { status.textContent = t("no_runs"); return; }
  const charts = new Map(KEYS.map((k) => { const el = h("div", { "data-key": k }); chartsEl.append(el); return [k, new Chart(k, el, (lo, hi) => loadAll(`after_step=${lo - 1}&until_step=${hi}`))]; }));
  async function loadAll(range) {
    const t0 = performance.now();
    await Promise.all(chosen.map(async (id) => {
      const m = await api(metricsUrl(id, `buckets=${BUCKETS}${range ? "&" + range : ""}`));
      for (const [k, c] of charts) {
        const pts = m[k] || [];
        c.set(id, [pts.map((p) => p.step), pts.map((p) => p.value)]);
        if (!range) c.zoomed = false;
      }
    }));
    for (const c of charts.values()) c.draw();
    status.textContent = `${chosen.length} ${t("runs")} · ${fmtNum([...charts.values()].reduce((n, c) => n + c.points(), 0))} ${t("points_drawn")}${range ? " · " + t("zoomed") : ""}`;
    view.dataset.loadedMs = String(Math.round(performance.now() - t0));
  }
  await loadAll("");
  view.dataset.ready = "1";
  // Events (checkpoints, the watchdog's interventions) and live streams of the runs still going.
  const detail = await Promise.all(chosen.map((id) => api(`${proj()}/runs/${id}`)));
  for (const d of detail) {
    const marks = d.events.filter((e) => e.step !== null && (INTERVENTIONS.has(e.kind) || /watchdog|rollback|spike|nan/i.test(e.kind)));
    charts.forEach((c) => c.marks.push(...marks));
    d.events.forEach((e) => events.append(h("li", { class: marks.includes(e) ? "err" : "" }, `${d.run.id} · ${t("step")} ${e.step ?? "—"} · ${e.kind} · ${e.message || ""} ${fmtDate(e.ts || e.at || e.created_at)}`)));
    if (["created", "running"].includes(d.run.status)) live(d.run.id);
  }
  charts.forEach((c) => c.draw());
  function live(id) {
    const src = new EventSource(`/api/v1${proj()}/runs/${id}/metrics/stream?poll_s=0.25`);
    onLeave(() => src.close());
    src.addEventListener("metrics", (ev) => {
      const m = JSON.parse(ev.data);
      for (const [k, v] of Object.entries(m.metrics)) charts.get(k)?.append(id, m.step, v);
      view.dataset.liveStep = String(m.step);
    });
    src.addEventListener("end", (ev) => { src.close(); status.textContent += ` · ${id}: ${t("state_" + JSON.parse(ev.data).state)}`; });
  }
  // Logs of the first run's job (found by the run id it recorded).
  const jobs = await api(`${proj()}/jobs?limit=500`).catch(() => []);
  const job = jobs.find((j) => j.data && j.data.run_id === chosen[0]);
  if (job) {
    const src = new EventSource(`/api/v1${proj()}/jobs/${job.id}/logs/stream`);
    onLeave(() => src.close());
    src.addEventListener("log", (ev) => { logs.textContent += JSON.parse(ev.data).text; logs.scrollTop = logs.scrollHeight; });
    src.addEventListener("end", () => src.close());
  } else logs.textContent = t("no_logs");
}
