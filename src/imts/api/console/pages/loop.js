// The loop: the project's closed loops; for one, the rising curve (accuracy per evaluation set, the base
// model at iteration 0, then each iteration), the timeline (problem found -> data fix -> gain), the steps
// with their jobs' states, live while it runs; for roles that may train, a form to start a loop
// (loopstart.js) and stop / resume / approve.
import { api, h, proj, canTrain, t, lang, fmtNum, fmtDate, fmtDur, errorBox, onLeave } from "./common.js";
import { startForm } from "./loopstart.js";
import uPlot from "../vendor/uPlot.esm.js";

const POLL_MS = 2000;
const COLORS = ["#2f5fd0", "#1b7f3b", "#b06d00", "#7b3fb5", "#00838f", "#c2185b", "#546e7a", "#9e9d24"];
const ACTIVE = ["running", "awaiting_approval"];
const pct = (x) => (x === null || x === undefined ? "—" : `${fmtNum(x * 100, 1)}%`);
const pts = (x) => `${x > 0 ? "+" : ""}${fmtNum(x * 100, 1)}`;
const say = (o) => (lang() === "zh" ? o.zh || o.why_zh : o.en || o.why_en) || o.en || o.why_en || "";
const setName = (s) => (t("set_" + s) === "set_" + s ? s : t("set_" + s)); // held-out sets keep their names
const shown = () => (location.hash.slice(2).split(/[/?]/)[0] || "") === "loop";

export async function render(view, rest) {
  // A started loop opens by its address: the page renders again on it, and the polling below follows it.
  const [loops, form] = await Promise.all([api(`${proj()}/loops`),
    canTrain() ? startForm({ started: (l) => (location.hash = `#/loop/${l.id}`) }) : null]);
  const chosen = rest[0] || (loops[0] && loops[0].id) || "";
  if (form) form.open = !loops.length;
  view.replaceChildren(h("h1", {}, t("page_loop")), form, h("table", { id: "loops" },
    h("tr", {}, [t("loop"), t("state"), t("iteration"), t("phase"), t("stop_reason"), t("best"), t("created")].map((x) => h("th", {}, x))),
    loops.map((l) => loopRow(l, chosen))));
  if (!loops.length) { view.append(h("p", { class: "muted", id: "no-loops" }, t("no_loops"))); return; }
  const detail = h("div", { id: "loop-detail" });
  view.append(detail);
  let last = "", polls = 0, timer = null;
  onLeave(() => clearTimeout(timer));
  // Poll while the loop is active: each read also moves an embedded server's loop on (a scheduler pass).
  async function tick() {
    clearTimeout(timer);
    try {
      // The loop first (its read runs the pass), then what that pass left: never older steps than status.
      const loop = await api(`${proj()}/loops/${chosen}`);
      const [steps, log] = await Promise.all([api(`${proj()}/loops/${chosen}/steps`), api(`${proj()}/loops/${chosen}/log`)]);
      if (!shown()) return;
      view.dataset.polls = String(++polls);
      const key = JSON.stringify([loop, steps, log]);
      if (key !== last) {
        last = key;
        view.querySelector(`tr[data-loop="${chosen}"]`)?.replaceWith(loopRow(loop, chosen));
        draw(detail, loop, steps, log, tick);
      }
      if (ACTIVE.includes(loop.status)) timer = setTimeout(tick, POLL_MS);
    } catch (e) { detail.replaceChildren(errorBox(e)); }
  }
  await tick();
}

const loopRow = (l, chosen) => h("tr", { "data-loop": l.id, class: l.id === chosen ? "chosen" : null },
  h("td", {}, h("a", { href: `#/loop/${l.id}` }, l.name), h("div", { class: "muted" }, l.id)), h("td", {}, status(l.status)),
  h("td", { class: "num" }, l.iteration), h("td", {}, t("phase_" + l.phase)), h("td", {}, lang() === "zh" ? l.stop_reason_zh : l.stop_reason_en),
  h("td", {}, l.best ? `${t("iteration")} ${l.best.iteration}` : "—"), h("td", {}, fmtDate(l.created_at)));
const status = (s) => h("span", { class: `state ${s === "finished" ? "succeeded" : s === "awaiting_approval" ? "paused" : s}`, "data-status": s }, t("loop_" + s));

function draw(el, loop, steps, log, refresh) {
  // A redraw keeps what the reader opened.
  const open = new Set([...el.querySelectorAll("details[open][data-keep]")].map((d) => d.dataset.keep));
  el.dataset.status = loop.status;
  const msg = h("div", { id: "loop-msg" });
  const act = (name) => h("button", { id: `loop-${name}`, class: name === "stop" ? "danger" : null, onclick: async (ev) => {
    ev.target.disabled = true;
    try { await api(`${proj()}/loops/${loop.id}/${name}`, { method: "POST" }); await refresh(); }
    catch (e) { msg.replaceChildren(errorBox(e)); ev.target.disabled = false; }
  } }, t("loop_do_" + name));
  const buttons = canTrain() ? [ACTIVE.includes(loop.status) ? act("stop") : null, ["stopped", "failed"].includes(loop.status) ? act("resume") : null,
    loop.status === "awaiting_approval" ? act("approve") : null] : [];
  const report = `/api/v1${proj()}/loops/${loop.id}/report?format=html&lang=${lang()}`;
  const spent = loop.spent || {};
  const feedback = steps.filter((s) => s.phase === "feedback" && s.result).at(-1);
  const bestModel = loop.best && (log.find((e) => e.iteration === loop.best.iteration) || {}).model_version;
  const proposed = loop.status === "awaiting_approval" && feedback ? feedback.result.actions || [] : null;
  el.replaceChildren(...[
    h("h2", {}, `${loop.name} `, status(loop.status)),
    h("p", { id: "loop-where" }, `${t("iteration")} ${loop.iteration}/${loop.spec.max_iterations} · ${t("phase_" + loop.phase)}`,
      loop.stop_reason ? ` · ${lang() === "zh" ? loop.stop_reason_zh : loop.stop_reason_en}` : "",
      loop.best ? ` · ${t("best")}: ${t("iteration")} ${loop.best.iteration}${bestModel ? ` (${bestModel})` : ""}` : "",
      ` · ${t("spent")}: ${fmtNum(spent.cpu_hours || 0, 2)} CPU-h, ${fmtNum(spent.tokens || 0)} tokens, ${fmtNum(spent.generated_items || 0)} ${t("generated")}`),
    h("p", { class: "muted" }, h("b", {}, loop.spec.intent), ` · ${loop.spec.data} → ${loop.spec.base_model} · ${t("policy")}: ${t("policy_" + loop.spec.policy)}`),
    loop.error ? h("p", { class: "err" }, loop.error) : null,
    h("div", { class: "row" }, ...buttons, h("a", { href: report, target: "_blank", id: "loop-report" }, t("loop_report")), msg),
    proposed ? h("div", { class: "card", id: "proposed" }, h("h2", {}, t("proposed_actions")),
      proposed.length ? h("ul", {}, proposed.map((a) => h("li", { "data-action": a.kind }, h("b", {}, t("do_" + a.kind)), " — ", say(a)))) : h("p", { class: "muted" }, t("no_actions"))) : null,
    h("h2", {}, t("rising_curve")), curve(log),
    h("h2", {}, t("timeline")), timeline(log),
    h("h2", {}, t("steps")), stepsTable(steps)].filter(Boolean));
  el.querySelectorAll("details[data-keep]").forEach((d) => (d.open = open.has(d.dataset.keep)));
}

/** Accuracy per evaluation set: the base model at iteration 0, then each iteration's model. */
function curve(log) {
  const box = h("div", { id: "loop-curve", class: "curve" });
  const scored = log.filter((e) => Object.keys(e.scores).length);
  if (!scored.length) { box.append(h("p", { class: "muted" }, t("no_scores"))); return box; }
  const sets = [...new Set(scored.flatMap((e) => Object.keys(e.scores)))];
  const xs = [0, ...scored.map((e) => e.iteration)];
  const data = [xs, ...sets.map((s) => [scored[0].base[s] ?? null, ...scored.map((e) => e.scores[s] ?? null)])];
  box.dataset.sets = sets.join(",");
  box.dataset.points = String(data.slice(1).reduce((n, ys) => n + ys.filter((y) => y !== null).length, 0));
  requestAnimationFrame(() => new uPlot({
    width: Math.max(420, Math.min(900, box.clientWidth || 720)), height: 280,
    scales: { x: { time: false }, y: { range: [0, 1] } },
    axes: [{ label: t("iteration"), values: (u, v) => v.map((x) => (Number.isInteger(x) ? (x === 0 ? t("base") : String(x)) : "")) },
      { label: t("accuracy"), values: (u, v) => v.map((y) => `${Math.round(y * 100)}%`) }],
    series: [{ label: t("iteration") }, ...sets.map((s, i) => ({ label: setName(s), stroke: COLORS[i % COLORS.length], width: 2,
      points: { show: true, size: 7 }, value: (u, v) => pct(v) }))],
  }, data, box));
  return box;
}

function timeline(log) {
  if (!log.length) return h("p", { class: "muted", id: "timeline" }, t("no_iterations"));
  return h("ol", { id: "timeline", class: "timeline" }, log.map((e) => h("li", { class: "card", "data-iteration": e.iteration },
    h("h3", {}, `${t("iteration")} ${e.iteration}`, e.model_version ? h("span", { class: "muted" }, ` · ${e.model_version}`) : null,
      e.p_vs_best !== null && e.p_vs_best !== undefined ? h("span", { class: "muted" }, ` · p = ${fmtNum(e.p_vs_best, 2)}`) : null),
    h("div", { class: "flow" },
      h("div", { class: "problems" }, h("h4", {}, "① ", t("problems_found")),
        e.problems.length ? h("ul", {}, e.problems.map((p) => h("li", {}, say(p)))) : h("p", { class: "muted" }, "—")),
      h("div", { class: "fix" }, h("h4", {}, "② ", t("data_fix")), fixSummary(e.fix),
        h("p", { class: "muted trained-from" }, `${t("trained_from")}: `, e.started_from ? t("trained_from_iteration", { n: e.started_from }) : t("trained_from_base"))),
      h("div", { class: "gain" }, h("h4", {}, "③ ", t("gain")), gainTable(e))),
    (e.warnings || []).length ? h("div", { class: "not-generalised" }, h("h4", {}, t("not_generalised")),
      h("ul", {}, e.warnings.map((w) => h("li", { class: "err" }, say(w))))) : null,
    Object.keys(e.categories).length ? h("details", { "data-keep": `categories-${e.iteration}` }, h("summary", {}, t("by_category")), h("table", { class: "categories" },
      h("tr", {}, [t("category"), t("before"), t("after"), t("gain")].map((x) => h("th", {}, x))),
      Object.entries(e.categories).map(([c, v]) => h("tr", {}, h("td", {}, c), h("td", { class: "num" }, pct(v.before)), h("td", { class: "num" }, pct(v.after)),
        h("td", { class: `num ${v.after - v.before >= 0 ? "ok" : "err"}` }, pts(v.after - v.before)))))) : null,
    e.clusters.length ? h("details", { "data-keep": `clusters-${e.iteration}` }, h("summary", {}, t("bad_case_clusters")), h("table", { class: "clusters" },
      h("tr", {}, [t("cluster"), t("category"), t("count"), t("error_before"), t("error_after")].map((x) => h("th", {}, x))),
      e.clusters.map((c) => h("tr", {}, h("td", {}, c.label), h("td", {}, c.category), h("td", { class: "num" }, c.size), h("td", { class: "num" }, pct(c.error_before)), h("td", { class: "num" }, pct(c.error_after)))))) : null,
    h("p", { class: "muted seconds" }, `${t("time")}: `, Object.entries(e.seconds).map(([p, s]) => `${t("phase_" + p)} ${fmtDur(s)}`).join(" · ")))));
}

function fixSummary(fix) {
  if (!fix || !Object.keys(fix).length) return h("p", { class: "muted" }, "—");
  if (fix.skipped) return h("p", { class: "muted" }, `${t("fix_skipped")}: ${fix.why || ""}`);
  const parts = [
    fix.pii_rows ? `${t("fix_pii")}: ${fmtNum(fix.pii_rows)}` : null,
    fix.cot_rewritten ? `${t("fix_cot")}: ${fmtNum(fix.cot_rewritten)}` : null,
    ...Object.entries(fix.augmented || {}).map(([c, n]) => `${t("fix_augment")} ${c}: +${fmtNum(n)}` +
      ((fix.chained || {})[c] ? ` (${t("fix_chained", { n: fmtNum(fix.chained[c]) })})` : "")),
    fix.reinforced ? `${t("fix_reinforce")}: ${fmtNum(fix.reinforced)}` : null,
    fix.replayed ? `${t("fix_replay")}: ${fmtNum(fix.replayed)}` : null,
  ].filter(Boolean);
  return h("div", {}, h("ul", {}, (parts.length ? parts : [t("fix_none")]).map((p) => h("li", {}, p))),
    h("p", { class: "muted" }, `→ ${fix.version || "—"}${fix.generated ? ` · ${fmtNum(fix.generated)} ${t("generated")}` : ""}`));
}

function gainTable(e) {
  const sets = Object.keys(e.scores);
  if (!sets.length) return h("p", { class: "muted" }, t("not_scored_yet"));
  return h("table", { class: "gains" }, h("tr", {}, [t("eval_set"), t("base"), t("score"), t("gain")].map((x) => h("th", {}, x))),
    sets.map((s) => h("tr", { "data-set": s }, h("td", {}, setName(s)), h("td", { class: "num" }, pct(e.base[s])), h("td", { class: "num" }, pct(e.scores[s])),
      h("td", { class: `num ${(e.gain[s] ?? 0) >= 0 ? "ok" : "err"}` }, e.gain[s] === undefined ? "—" : pts(e.gain[s])))));
}

function stepsTable(steps) {
  return h("table", { id: "loop-steps" }, h("tr", {}, [t("iteration"), t("phase"), t("try"), t("job"), t("state"), t("time")].map((x) => h("th", {}, x))),
    steps.map((s) => h("tr", { "data-phase": s.phase, "data-iteration": s.iteration, "data-state": s.state },
      h("td", { class: "num" }, s.iteration), h("td", {}, t("phase_" + s.phase)), h("td", { class: "num" }, s.try_no),
      h("td", {}, s.job_id || "—"), h("td", {}, h("span", { class: `state ${s.state}` }, t("state_" + s.state))), h("td", { class: "num" }, fmtDur(s.seconds)))));
}
