// Launch: a training run from a form built from the run spec's schema, its memory plan shown before
// submitting; an evaluation from the suite spec's schema.
import { api, h, proj, canTrain, t, fmtNum, errorBox } from "./common.js";
import { specForm } from "./specform.js";

export async function render(view) {
  if (!canTrain()) { view.replaceChildren(h("h1", {}, t("page_launch")), h("p", { class: "muted", id: "no-launch" }, t("no_permission_launch"))); return; }
  const [runSchema, evalSchema, bases, datasets] = await Promise.all([
    api("/specs/run"), api("/specs/eval"), api("/base-models"), api(`${proj()}/datasets`)]);
  const baseNames = bases.map((b) => b.name);
  const dataRefs = datasets.map((v) => `${v.dataset}@${v.number}`).sort().reverse();
  runSchema.properties.base_model = { ...runSchema.properties.base_model, enum: baseNames, default: baseNames[0] };
  runSchema.properties.data = { ...runSchema.properties.data, enum: dataRefs, default: dataRefs[0] };
  const form = specForm(runSchema, { id: "run" });
  const modelName = h("input", { id: "model-name", placeholder: t("optional") });
  const gpus = h("input", { id: "plan-gpus", value: "cpu", size: 14 });
  const planBox = h("div", { id: "plan", class: "card" });
  const msg = h("div", { id: "launch-msg" });
  async function refreshPlan() {
    const v = form.value();
    planBox.replaceChildren(h("span", { class: "muted" }, t("loading")));
    try {
      const p = await api(`${proj()}/plan`, { method: "POST", body: { base_model: v.base_model, method: v.method, quantization: v.quantization,
        batch_size: v.batch_size, grad_accum: v.grad_accum, max_seq_len: v.max_seq_len, lora_rank: (v.lora || {}).rank || 16, gpus: gpus.value } });
      planBox.replaceChildren(h("h2", {}, t("memory_plan"), ` — ${p.model}, ${fmtNum(p.params / 1e6)} M ${t("params")}, ${p.hardware}`),
        h("table", {}, h("tr", {}, [t("method"), t("strategy"), t("weights"), t("gradients"), t("optimizer"), t("activations"), t("total") + " GiB", t("fits")].map((x) => h("th", {}, x))),
          p.options.map((o) => h("tr", { class: p.chosen && p.chosen.strategy === o.strategy && p.chosen.method === o.method ? "ok" : "" },
            h("td", {}, o.method), h("td", {}, o.strategy), ...[o.weights, o.gradients, o.optimizer, o.activations, o.total].map((x) => h("td", { class: "num" }, fmtNum(x))), h("td", {}, o.fits ? "✓" : "✗")))),
        h("p", { class: "muted" }, p.why));
    } catch (e) { planBox.replaceChildren(errorBox(e)); }
  }
  form.onchange((path) => { if (["base_model", "method", "quantization", "batch_size", "grad_accum", "max_seq_len", "lora.rank"].includes(path)) refreshPlan(); });
  gpus.addEventListener("change", refreshPlan);
  const submit = h("button", { id: "launch", onclick: async () => {
    msg.replaceChildren(); form.showErrors(null);
    try {
      const job = await api(`${proj()}/train`, { method: "POST", body: { run: form.value(), model_name: modelName.value || null } });
      msg.replaceChildren(h("p", { class: "ok" }, t("launched"), " ", h("a", { href: "#/overview", id: "launched-job" }, job.id)));
      waitForRun(job.id, msg);
    } catch (e) { if (!form.showErrors(e, "run")) msg.replaceChildren(errorBox(e)); }
  } }, t("launch_run"));

  const evalForm = specForm(evalSchema, { id: "eval", overrides: { datasets: dataRefs.slice(0, 1).map((r) => `${r}:test`) } });
  const evalModel = h("input", { id: "eval-model", value: baseNames[0] || "", placeholder: t("model_ref") });
  const evalMsg = h("div", { id: "eval-msg" });
  const evalBtn = h("button", { id: "launch-eval", onclick: async () => {
    evalMsg.replaceChildren(); evalForm.showErrors(null);
    try {
      const job = await api(`${proj()}/evaluations`, { method: "POST", body: { model: evalModel.value, suite: evalForm.value() } });
      evalMsg.replaceChildren(h("p", { class: "ok" }, t("launched"), " ", h("a", { href: "#/overview" }, job.id)));
    } catch (e) { if (!evalForm.showErrors(e, "suite")) evalMsg.replaceChildren(errorBox(e)); }
  } }, t("launch_eval"));

  view.replaceChildren(h("h1", {}, t("page_launch")),
    h("div", { class: "card" }, h("h2", {}, t("training_run")), form.el,
      h("div", { class: "row" }, h("label", {}, t("model_name"), " ", modelName), h("label", {}, t("hardware"), " ", gpus)), planBox, h("div", { class: "row" }, submit), msg),
    h("div", { class: "card" }, h("h2", {}, t("evaluation")), h("div", { class: "row" }, h("label", {}, t("model_ref"), " ", evalModel)), evalForm.el, h("div", { class: "row" }, evalBtn), evalMsg));
  refreshPlan();
}

/** Once the job has started its run, link to the run's live curves. */
async function waitForRun(jobId, msg) {
  for (let i = 0; i < 240; i++) {
    const d = await api(`${proj()}/jobs/${jobId}`);
    const runId = d.job.data && d.job.data.run_id;
    // The job names its run before the run's record exists: link once the run answers.
    const started = runId && (await api(`${proj()}/runs/${runId}`).then(() => true, () => false));
    if (started) { msg.append(h("p", {}, h("a", { href: `#/monitor?run=${runId}`, id: "watch-run" }, t("watch_curves")))); return; }
    if (["failed", "cancelled"].includes(d.job.state)) { msg.append(h("p", { class: "err" }, d.job.error || d.job.state)); return; }
    await new Promise((r) => setTimeout(r, 500));
  }
}
