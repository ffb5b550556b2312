// The console's shell: sign-in, the API client, the tenant/project picker, the pages' router.
// Every call goes to the public REST API under /api/v1 with the session cookie and the CSRF token.
import { t, lang, setLang, LANGS } from "./i18n.js";

export const state = { me: null, tenant: "", project: "", csrf: sessionStorage.getItem("imts.csrf") || "" };
const PAGES = ["overview", "launch", "monitor", "datasets", "insights", "review", "evaluation", "models", "loop", "admin"];

/** An element: h("a", {href: "#"}, "text", child…); attributes starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "html") el.innerHTML = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status; this.param = e.param || null; this.body = body;
  }
}

/** Call the API: JSON in and out; unsafe methods carry the CSRF token. */
export async function api(path, { method = "GET", body, raw, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (method !== "GET") init.headers["X-CSRF-Token"] = state.csrf;
  if (body !== undefined) {
    if (raw) init.body = body;
    else { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  }
  const r = await fetch("/api/v1" + path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (r.status === 401 && !path.startsWith("/auth/")) { state.me = null; render(); }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

/** The path of the current project ("/tenants/T/projects/P"). */
export const proj = () => `/tenants/${encodeURIComponent(state.tenant)}/projects/${encodeURIComponent(state.project)}`;
export const roleIn = (tenant) => (state.me?.memberships.find((m) => m.tenant === tenant) || {}).role || (state.me?.user.is_platform_admin ? "admin" : "viewer");
/** Whether the caller may launch, upload and delete here (admin, researcher). */
export const canTrain = () => ["admin", "researcher"].includes(roleIn(state.tenant));
export const fmtNum = (x, d = 3) => (x === null || x === undefined || Number.isNaN(x) ? "—" : new Intl.NumberFormat(lang() === "zh" ? "zh-CN" : "en-US", { maximumSignificantDigits: d + 2 }).format(x));
export const fmtMoney = (x, currency) => {
  if (x === null || x === undefined) return "—";
  try { return new Intl.NumberFormat(lang() === "zh" ? "zh-CN" : "en-US", { style: "currency", currency }).format(x); }
  catch { return `${fmtNum(x)} ${currency}`; } // not an ISO 4217 code (e.g. "RMB"): the number and the name given
};
export const fmtDate = (x) => (x ? new Intl.DateTimeFormat(lang() === "zh" ? "zh-CN" : "en-US", { dateStyle: "short", timeStyle: "medium" }).format(typeof x === "number" ? new Date(x * 1000) : new Date(x)) : "—");
export const fmtDur = (s) => (s === null || s === undefined || !isFinite(s) ? "—" : s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
export const errorBox = (e) => h("p", { class: "err", role: "alert" }, e.message || String(e));

function loginPage(view) {
  const user = h("input", { name: "username", autocomplete: "username", required: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const msg = h("p", { class: "err" });
  const form = h("form", { class: "card login", onsubmit: async (ev) => {
    ev.preventDefault(); msg.textContent = "";
    try {
      const r = await api("/auth/login", { method: "POST", body: { username: user.value, password: pass.value } });
      state.csrf = r.csrf_token; sessionStorage.setItem("imts.csrf", r.csrf_token);
      await loadMe(); location.hash = "#/overview"; render();
    } catch (e) { msg.textContent = e.message; }
  } }, h("h1", {}, "IMTS — " + t("sign_in")), h("p", {}, h("label", {}, t("username"), h("br"), user)),
    h("p", {}, h("label", {}, t("password"), h("br"), pass)), h("button", { type: "submit" }, t("sign_in")), msg);
  view.replaceChildren(form);
}

async function loadMe() {
  state.me = await api("/me");
  if (state.me.user.lang && state.me.user.lang !== lang()) setLang(state.me.user.lang);
  const tenants = state.me.memberships.map((m) => m.tenant);
  if (!tenants.includes(state.tenant)) state.tenant = localStorage.getItem("imts.tenant") || tenants[0] || "";
  if (!tenants.includes(state.tenant)) state.tenant = tenants[0] || "";
  state.project = localStorage.getItem("imts.project") || "default";
}

async function header() {
  const top = document.getElementById("top");
  const page = (location.hash.slice(2).split(/[/?]/)[0]) || "overview";
  const tenants = state.me.memberships.map((m) => m.tenant);
  const tSel = h("select", { "aria-label": t("tenant"), onchange: () => { state.tenant = tSel.value; localStorage.setItem("imts.tenant", state.tenant); render(); } },
    tenants.map((x) => h("option", { value: x, selected: x === state.tenant }, x)));
  const pSel = h("select", { "aria-label": t("project"), onchange: () => { state.project = pSel.value; localStorage.setItem("imts.project", state.project); render(); } });
  if (state.tenant) {
    try {
      const ps = await api(`/tenants/${encodeURIComponent(state.tenant)}/projects`);
      if (!ps.some((p) => p.name === state.project) && ps.length) state.project = ps[0].name;
      ps.forEach((p) => pSel.append(h("option", { value: p.name, selected: p.name === state.project }, p.name)));
    } catch { /* a tenant the caller cannot list projects of: keep the name */ }
  }
  const langSel = h("select", { id: "lang", "aria-label": t("language"), onchange: async () => {
    setLang(langSel.value);
    await api("/me/preferences", { method: "PUT", body: { lang: langSel.value } });
    render();
  } }, LANGS.map(([code, name]) => h("option", { value: code, selected: code === lang() }, name)));
  top.replaceChildren(h("span", { class: "brand" }, "IMTS"),
    ...PAGES.map((p) => h("a", { href: `#/${p}`, class: p === page ? "on" : null, id: `nav-${p}` }, t("page_" + p))),
    h("span", { class: "right" }, tSel, pSel, langSel, h("span", {}, `${state.me.user.username} (${t("role_" + roleIn(state.tenant))})`),
      h("button", { class: "secondary", onclick: async () => { await api("/auth/logout", { method: "POST" }); state.me = null; sessionStorage.removeItem("imts.csrf"); render(); } }, t("sign_out"))));
}

let cleanup = [];
/** Register something to stop (an EventSource, a timer) when the page changes. */
export const onLeave = (fn) => cleanup.push(fn);

export async function render() {
  cleanup.forEach((fn) => fn()); cleanup = [];
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  // A fresh #view per render: a render still awaiting its data when the next one starts (two hash
  // changes in a row) then writes into a detached element, not on top of the current page.
  const view = h("main", { id: "view" });
  document.getElementById("view").replaceWith(view);
  if (!state.me) {
    try { if (state.csrf) await loadMe(); } catch { state.me = null; }
  }
  if (!state.me) { document.getElementById("top").replaceChildren(); loginPage(view); return; }
  await header();
  const [name, query] = location.hash.slice(2).split("?");
  const [page, ...rest] = (name || "overview").split("/");
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  view.replaceChildren(h("p", { class: "muted" }, t("loading")));
  try {
    const mod = await import(`./pages/${PAGES.includes(page) ? page : "overview"}.js`);
    await mod.render(view, rest.map(decodeURIComponent), params);
  } catch (e) { view.replaceChildren(errorBox(e)); }
}

window.addEventListener("hashchange", render);
render();
