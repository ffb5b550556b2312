// A form built from a pydantic JSON schema: one input per field with its default and help (in Chinese
// where the schema has `description_zh`), nested models as fieldsets; long strings as text areas, lists
// with a closed set of values as multiple selects, dicts as JSON; errors from the API (422 or 404 with `param`) are
// shown at their field.
import { h, t, lang } from "./common.js";

const resolve = (schema, s) => (s && s.$ref ? schema.$defs[s.$ref.split("/").pop()] : s);
function kindOf(schema, s) {
  s = resolve(schema, s);
  if (s.anyOf) {
    const inner = s.anyOf.find((x) => x.type !== "null");
    return { ...kindOf(schema, inner), nullable: s.anyOf.some((x) => x.type === "null") };
  }
  if (s.enum) return { type: "enum", values: s.enum };
  if (s.const !== undefined) return { type: "enum", values: [s.const] };
  if (s.type === "object" && s.properties) return { type: "object", schema: s };
  if (s.type === "object") return { type: "map" }; // a dict (e.g. a suite's per-set items): typed as JSON
  return { type: s.type || "string", items: resolve(schema, s.items), maxLength: s.maxLength,
    min: s.minimum ?? s.exclusiveMinimum, max: s.maximum ?? s.exclusiveMaximum };
}
/** The schema's text in the UI language: `description_zh` / `title_zh` beside the English. */
const said = (s, key) => (lang() === "zh" && s[key + "_zh"]) || s[key];

/** Build the form; returns {el, value(), showErrors(err), onchange(fn)}. `only`: the top-level fields to
 *  show (the others are left to the API's defaults); `noneLabel`: the text of a nullable select's null. */
export function specForm(schema, { overrides = {}, id = "spec", only = null, noneLabel = "—" } = {}) {
  const inputs = new Map(); // dotted path -> {read(), el, err}
  const listeners = [];
  function fields(obj, prefix) {
    const out = [];
    for (const [name, prop] of Object.entries(obj.properties)) {
      const path = prefix ? `${prefix}.${name}` : name;
      if (only && !prefix && !only.includes(name)) continue;
      const k = kindOf(schema, prop);
      const p = resolve(schema, prop);
      if (k.type === "object") {
        out.push(h("fieldset", { "data-field": path }, h("legend", {}, said(k.schema, "title") || name), h("div", { class: "spec-inner", style: "display:grid;grid-template-columns:200px 1fr;gap:.4rem 1rem" }, fields(k.schema, path))));
        continue;
      }
      const def = path in overrides ? overrides[path] : p.default;
      let el, read;
      if (k.type === "enum") {
        el = h("select", { name: path }, k.nullable ? h("option", { value: "", selected: def === null }, noneLabel) : null, k.values.map((v) => h("option", { value: v, selected: v === def }, String(v))));
        read = () => (el.value === "" && k.nullable ? null : el.value);
      } else if (k.type === "array" && k.items && k.items.enum) {
        el = h("select", { name: path, multiple: true, size: Math.min(6, Math.max(2, k.items.enum.length)) },
          k.items.enum.map((v) => h("option", { value: v, selected: (def || []).includes(v) }, String(v))));
        read = () => [...el.selectedOptions].map((o) => o.value);
      } else if (k.type === "boolean") {
        el = h("input", { type: "checkbox", name: path, checked: !!def });
        read = () => el.checked;
      } else if (k.type === "array") {
        el = h("input", { name: path, value: (def || []).join(", "), placeholder: "a, b" });
        read = () => { const xs = el.value.split(",").map((x) => x.trim()).filter(Boolean); return xs.length || !k.nullable ? xs : null; };
      } else if (k.type === "integer" || k.type === "number") {
        el = h("input", { type: "number", name: path, step: k.type === "integer" ? "1" : "any", min: k.min, max: k.max, value: def ?? "" });
        read = () => (el.value === "" ? (k.nullable ? null : undefined) : Number(el.value));
      } else if (k.type === "map") {
        el = h("input", { name: path, value: def && Object.keys(def).length ? JSON.stringify(def) : "", placeholder: t("json_object") });
        // Not JSON: sent as typed, and the API's 422 is shown at this field.
        read = () => { const v = el.value.trim(); if (!v) return k.nullable ? null : undefined; try { return JSON.parse(v); } catch { return v; } };
      } else if (k.maxLength >= 500) {
        el = h("textarea", { name: path, rows: 3, cols: 72 }, def ?? "");
        read = () => (el.value.trim() === "" ? (k.nullable ? null : undefined) : el.value);
      } else {
        el = h("input", { name: path, value: def ?? "" });
        read = () => (el.value === "" ? (k.nullable ? null : undefined) : el.value);
      }
      el.id = `${id}-${path.replace(/\./g, "-")}`;
      el.addEventListener("change", () => listeners.forEach((fn) => fn(path)));
      const err = h("div", { class: "err", "data-error": path });
      inputs.set(path, { el, read, err, isDefault: () => {
        if (path in overrides) return false;
        const v = read();
        // A default made by a factory is not in the schema: an empty input keeps it.
        if (!("default" in p)) return v === null || v === undefined || (Array.isArray(v) && !v.length);
        return JSON.stringify(v) === JSON.stringify(p.default ?? null);
      } });
      const help = [said(p, "description"), el.multiple ? t("pick_several") : null].filter(Boolean).join(" ");
      out.push(h("label", { for: el.id }, name), h("div", {}, el, help ? h("div", { class: "help" }, help) : null, err));
    }
    return out;
  }
  const el = h("form", { class: "spec", id, onsubmit: (e) => e.preventDefault() }, fields(schema, ""));
  const required = new Set(schema.required || []);
  /** The spec as JSON: required fields and every field changed from its default (the API fills in
   *  the rest, so a default the form cannot spell, such as "all linear layers", stays the API's). */
  function value() {
    const out = {};
    for (const [path, f] of inputs) {
      const v = f.read();
      if (v === undefined || (!required.has(path) && f.isDefault())) continue;
      const parts = path.split(".");
      let o = out;
      parts.slice(0, -1).forEach((p) => (o = o[p] = o[p] || {}));
      o[parts.at(-1)] = v;
    }
    return out;
  }
  function showErrors(e, prefix = "") {
    inputs.forEach((f) => (f.err.textContent = ""));
    if (!e) return false;
    const param = (e.param || "").replace(new RegExp(`^${prefix}\\.?`), "");
    let best = null;
    for (const path of inputs.keys()) if (param === path || param.startsWith(path + ".") || param.endsWith("." + path)) best = path;
    if (best) { inputs.get(best).err.textContent = e.message; inputs.get(best).el.focus(); return true; }
    return false;
  }
  const get = (path) => inputs.get(path);
  return { el, value, showErrors, get, onchange: (fn) => listeners.push(fn), t };
}
