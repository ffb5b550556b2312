// The loop page's form to start a closed loop, built from the loop spec's JSON schema (GET /specs/loop):
// the main fields first, the rest under "More settings"; the dataset, held-out sets, replay sets and base
// model chosen from what the project has. A 422 or 404 is shown at the field its `param` names; on
// success the page opens the new loop (and polls it).
import { api, h, proj, t, errorBox } from "./common.js";
import { specForm } from "./specform.js";

const MAIN = ["intent", "data", "base_model", "max_iterations", "target", "policy", "eval_items", "budget", "heldout", "probe"];
const latestFirst = (a, b) => a.dataset.localeCompare(b.dataset) || b.number - a.number;

/** The form in a card that opens on a click; `started(loop)` runs after a start. */
export async function startForm({ started }) {
  const [schema, bases, versions] = await Promise.all([api("/specs/loop"), api("/base-models"), api(`${proj()}/datasets`)]);
  const probe = schema.properties.probe.default;
  // The probe is the loop's own evaluation set, neither data to learn from nor a held-out set.
  const own = versions.filter((v) => v.dataset !== probe).sort(latestFirst);
  const refs = own.map((v) => `${v.dataset}@${v.number}`);
  const latest = own.filter((v, i) => !i || own[i - 1].dataset !== v.dataset).map((v) => `${v.dataset}@${v.number}`);
  const baseNames = bases.map((b) => b.name);
  const p = schema.properties;
  const props = {
    ...p,
    data: { ...p.data, enum: refs },
    base_model: { ...p.base_model, enum: baseNames },
    heldout: { ...p.heldout, items: { type: "string", enum: latest } },
    replay: { ...p.replay, items: { type: "string", enum: latest } },
    probe: { ...p.probe, anyOf: [{ enum: [probe] }, { type: "null" }] },
  };
  const full = { ...schema, properties: props };
  // Chosen here, so always sent (a value equal to the schema's default is otherwise left to the API).
  const overrides = { data: refs[0], base_model: baseNames.includes(p.base_model.default) ? p.base_model.default : baseNames[0] };
  const main = specForm(full, { id: "loop-spec", only: MAIN, overrides, noneLabel: t("probe_none") });
  const more = specForm(full, { id: "loop-more", only: Object.keys(props).filter((k) => !MAIN.includes(k)) });
  const moreBox = h("details", { id: "loop-more-box" }, h("summary", {}, t("more_settings")), more.el);
  // A held-out set is another dataset than the one learnt from.
  const sameData = () => {
    const name = main.get("data").el.value.split("@")[0];
    for (const o of main.get("heldout").el.options) {
      o.disabled = o.value.split("@")[0] === name;
      if (o.disabled) o.selected = false;
    }
  };
  main.onchange((path) => { if (path === "data") sameData(); });
  sameData();
  const msg = h("div", { id: "loop-new-msg" });
  const submit = h("button", { id: "loop-start", type: "button", onclick: async () => {
    msg.replaceChildren(); main.showErrors(null); more.showErrors(null);
    submit.disabled = true;
    try {
      const loop = await api(`${proj()}/loops`, { method: "POST", body: { ...main.value(), ...more.value() } });
      started(loop);
    } catch (e) {
      if (main.showErrors(e)) return;
      if (more.showErrors(e)) { moreBox.open = true; return; }
      msg.replaceChildren(errorBox(e));
    } finally { submit.disabled = false; }
  } }, t("start_loop"));
  const none = refs.length ? null : h("p", { class: "muted", id: "loop-no-data" }, t("loop_needs_data"));
  return h("details", { class: "card", id: "loop-new" },
    h("summary", {}, h("b", {}, t("new_loop"))), none || [main.el, moreBox, h("div", { class: "row" }, submit), msg]);
}
