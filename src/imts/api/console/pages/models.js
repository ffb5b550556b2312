// Models: the registry (versions, aliases, lineage, evaluation results), compare two versions, export.
import { api, h, proj, roleIn, state, t, fmtNum, fmtDate, errorBox } from "./common.js";

const kv = (obj) => h("table", {}, Object.entries(obj || {}).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v).slice(0, 400) : String(v ?? "—")))));

export async function render(view) {
  const [versions, bases] = await Promise.all([api(`${proj()}/models`), api("/base-models")]);
  const canDeploy = ["admin", "researcher", "developer"].includes(roleIn(state.tenant));
  const labels = versions.map((v) => `${v.name}:${v.version}`);
  const table = h("table", { id: "models" }, h("tr", {}, [t("model"), t("aliases"), t("base_model"), t("training_run"), t("dataset"), t("metrics"), t("created"), ""].map((x) => h("th", {}, x))),
    versions.map((v) => h("tr", { "data-model": `${v.name}:${v.version}` }, h("td", {}, `${v.name}:${v.version}`, v.archived_at ? h("span", { class: "muted" }, ` (${t("archived")})`) : null),
      h("td", {}, v.aliases.join(", ") || "—"), h("td", {}, v.base_model_id), h("td", {}, h("a", { href: `#/monitor?run=${v.train_run_id}` }, v.train_run_id), " ", h("a", { href: `#/evaluation/${v.train_run_id}` }, t("report"))),
      h("td", {}, v.dataset_version_id), h("td", {}, Object.entries(v.metrics || {}).slice(0, 4).map(([k, x]) => `${k} ${typeof x === "number" ? fmtNum(x) : x}`).join(" · ")),
      h("td", {}, fmtDate(v.created_at)),
      h("td", {}, canDeploy ? h("button", { class: "secondary", "data-export": `${v.name}:${v.version}`, onclick: async () => {
        const ref = encodeURIComponent(`${v.name}:${v.version}`), fmt = format.value;
        // The export is checked by loading it back on the server; then its files download as one tar.
        const link = h("a", { id: "export-download", class: "button", href: `/api/v1${proj()}/models/${ref}/exports/${fmt}`, download: "" }, `${t("download")} ${v.name}-${v.version}-${fmt}.tar`);
        out.replaceChildren(h("span", { class: "muted" }, t("loading")));
        try { const r = await api(`${proj()}/models/${ref}/exports`, { method: "POST", body: { format: fmt } });
          out.replaceChildren(h("p", { class: "ok" }, `${t("exported")}: ${r.files.length} ${t("files")}, ${fmtNum(r.bytes / 1e6)} MB `, link)); }
        catch (e) { out.replaceChildren(errorBox(e), e.status === 422 && /exists/.test(e.message) ? link : ""); } // exported before
      } }, t("export")) : null))));
  const format = h("select", { id: "export-format", "aria-label": t("export_format") }, ["adapter", "merged", "gguf"].map((f) => h("option", { value: f }, f)));
  const out = h("div", { id: "export-msg" });
  const a = h("select", { id: "cmp-a" }, labels.map((l, i) => h("option", { value: l, selected: i === labels.length - 2 }, l)));
  const b = h("select", { id: "cmp-b" }, labels.map((l, i) => h("option", { value: l, selected: i === labels.length - 1 }, l)));
  const cmp = h("div", { id: "compare" });
  const go = h("button", { class: "secondary", id: "compare-run", onclick: async () => {
    try { const r = await api(`${proj()}/models/${encodeURIComponent(a.value)}/compare?other=${encodeURIComponent(b.value)}&lang=${document.documentElement.lang.startsWith("zh") ? "zh" : "en"}`); cmp.replaceChildren(kv(r)); }
    catch (e) { cmp.replaceChildren(errorBox(e)); }
  } }, t("compare"));
  view.replaceChildren(h("h1", {}, t("page_models")), versions.length ? table : h("p", { class: "muted" }, t("no_models")),
    canDeploy && versions.length ? h("label", {}, t("export_format"), " ", format) : null, out,
    h("h2", {}, t("compare")), h("div", { class: "row" }, a, "↔", b, go), cmp,
    h("h2", {}, t("base_models")), h("table", { id: "base-models" }, h("tr", {}, [t("model"), t("license"), t("params")].map((x) => h("th", {}, x))),
      bases.map((m) => h("tr", {}, h("td", {}, m.name), h("td", {}, m.license || "—"), h("td", { class: "num" }, fmtNum(m.params))))));
}
