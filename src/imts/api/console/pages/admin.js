// Admin: users, roles, API keys (create, shown once, revoke), tenants and projects, quotas and the
// pool, the audit log with filters. Each part shows what the caller's role may see.
import { api, h, state, roleIn, t, fmtDate, fmtNum, errorBox } from "./common.js";

const T = () => `/tenants/${encodeURIComponent(state.tenant)}`;

async function keysCard() {
  const keys = await api("/keys");
  const name = h("input", { id: "key-name", placeholder: t("name") });
  const ceiling = h("select", { id: "key-role" }, h("option", { value: "" }, t("my_role")), ["viewer", "developer", "researcher", "admin"].map((r) => h("option", { value: r }, t("role_" + r))));
  const secret = h("div", { id: "key-secret" });
  const card = h("div", { class: "card", id: "keys" });
  const draw = (list) => card.replaceChildren(h("h2", {}, t("api_keys")),
    h("div", { class: "row" }, name, ceiling, h("button", { id: "key-create", onclick: async () => {
      try { const k = await api("/keys", { method: "POST", body: { name: name.value, tenant: state.tenant, role_ceiling: ceiling.value || null } });
        secret.replaceChildren(h("p", {}, t("secret_once")), h("div", { class: "secret", id: "key-secret-value" }, k.secret)); draw(await api("/keys")); } catch (e) { secret.replaceChildren(errorBox(e)); }
    } }, t("create_key"))), secret,
    h("table", {}, h("tr", {}, [t("name"), t("prefix"), t("scope"), t("expires"), t("state"), ""].map((x) => h("th", {}, x))),
      list.map((k) => h("tr", { "data-key": k.id }, h("td", {}, k.name), h("td", {}, k.prefix), h("td", {}, [k.tenant, k.project, k.role_ceiling].filter(Boolean).join(" / ") || "—"),
        h("td", {}, fmtDate(k.expires_at)), h("td", {}, k.revoked_at ? t("revoked") : t("active")),
        h("td", {}, k.revoked_at ? null : h("button", { class: "danger", "data-revoke": k.id, onclick: async () => { if (!confirm(t("confirm_revoke"))) return; await api(`/keys/${k.id}`, { method: "DELETE" }); draw(await api("/keys")); } }, t("revoke")))))));
  draw(keys);
  return card;
}

async function membersCard() {
  const members = await api(`${T()}/members`);
  const admin = roleIn(state.tenant) === "admin";
  const user = h("input", { id: "member-user", placeholder: t("username") });
  const role = h("select", { id: "member-role" }, ["viewer", "developer", "researcher", "admin"].map((r) => h("option", { value: r }, t("role_" + r))));
  const msg = h("div");
  return h("div", { class: "card", id: "members" }, h("h2", {}, t("members"), ` — ${state.tenant}`),
    h("table", {}, h("tr", {}, [t("username"), t("role"), ""].map((x) => h("th", {}, x))), members.map((m) => h("tr", {}, h("td", {}, m.username), h("td", {}, t("role_" + m.role)),
      h("td", {}, admin ? h("button", { class: "danger", onclick: async () => { await api(`${T()}/members/${encodeURIComponent(m.username)}`, { method: "DELETE" }); location.reload(); } }, t("remove")) : null)))),
    admin ? h("div", { class: "row" }, user, role, h("button", { id: "member-set", onclick: async () => {
      try { await api(`${T()}/members/${encodeURIComponent(user.value)}`, { method: "PUT", body: { role: role.value } }); location.reload(); } catch (e) { msg.replaceChildren(errorBox(e)); }
    } }, t("set_role"))) : null, msg);
}

async function platformCard() {
  const [users, tenants] = await Promise.all([api("/users"), api("/tenants")]);
  const uname = h("input", { id: "user-name", placeholder: t("username") });
  const pw = h("input", { id: "user-password", type: "password", placeholder: t("password") });
  const tname = h("input", { id: "tenant-name", placeholder: t("tenant") });
  const pname = h("input", { id: "project-name", placeholder: t("project") });
  const msg = h("div");
  const act = (fn) => async () => { try { await fn(); location.reload(); } catch (e) { msg.replaceChildren(errorBox(e)); } };
  return h("div", { class: "card", id: "platform" }, h("h2", {}, t("users")),
    h("table", {}, users.map((u) => h("tr", {}, h("td", {}, u.username), h("td", {}, u.is_platform_admin ? t("platform_admin") : ""), h("td", {}, u.disabled ? t("disabled") : t("active")),
      h("td", {}, u.disabled ? null : h("button", { class: "danger", onclick: act(() => api(`/users/${encodeURIComponent(u.username)}/disable`, { method: "POST" })) }, t("disable")))))),
    h("div", { class: "row" }, uname, pw, h("button", { onclick: act(() => api("/users", { method: "POST", body: { username: uname.value, password: pw.value } })) }, t("add_user"))),
    h("h2", {}, t("tenants")), h("p", {}, tenants.map((x) => x.name).join(", ")),
    h("div", { class: "row" }, tname, h("button", { onclick: act(() => api("/tenants", { method: "POST", body: { name: tname.value } })) }, t("add_tenant")),
      pname, h("button", { onclick: act(() => api(`${T()}/projects`, { method: "POST", body: { name: pname.value } })) }, t("add_project"))), msg);
}

async function quotaCard() {
  const q = await api(`${T()}/quota`);
  return h("div", { class: "card", id: "quota" }, h("h2", {}, t("quotas")), h("table", {}, Object.entries(q).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : typeof v === "number" ? fmtNum(v) : String(v ?? "—"))))));
}

async function auditCard() {
  const actor = h("input", { id: "audit-actor", placeholder: t("actor") });
  const action = h("input", { id: "audit-action", placeholder: "key.*" });
  const since = h("input", { id: "audit-since", type: "datetime-local" });
  const body = h("tbody");
  async function load() {
    const q = new URLSearchParams({ limit: "200" });
    if (actor.value) q.set("actor", actor.value);
    if (action.value) q.set("action", action.value);
    if (since.value) q.set("since", since.value);
    const rows = await api(`${T()}/audit?${q}`);
    body.replaceChildren(...rows.reverse().map((a) => h("tr", {}, h("td", {}, a.seq), h("td", {}, fmtDate(a.at)), h("td", {}, a.actor), h("td", {}, a.action), h("td", {}, `${a.object_type} ${a.object_id}`),
      h("td", { class: "muted" }, JSON.stringify(a.after || {}).slice(0, 120)))));
  }
  await load();
  return h("div", { class: "card", id: "audit" }, h("h2", {}, t("audit_log")), h("div", { class: "row" }, actor, action, since, h("button", { class: "secondary", id: "audit-filter", onclick: load }, t("filter"))),
    h("table", {}, h("thead", {}, h("tr", {}, ["#", t("time"), t("actor"), t("action"), t("object"), t("after")].map((x) => h("th", {}, x)))), body));
}

export async function render(view) {
  const parts = [h("h1", {}, t("page_admin")), await keysCard()];
  const settle = async (fn) => { try { parts.push(await fn()); } catch (e) { if (e.status !== 403 && e.status !== 404) parts.push(errorBox(e)); } };
  await settle(membersCard);
  await settle(quotaCard);
  if (roleIn(state.tenant) === "admin") await settle(auditCard);
  if (state.me.user.is_platform_admin) await settle(platformCard);
  view.replaceChildren(...parts);
}
