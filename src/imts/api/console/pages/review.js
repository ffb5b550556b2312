// Review: the rows a data fix held back for a person (imts data fix … --review-share). Each item shows
// its question and answer, a rewrite its original answer beside the new one (words removed and added
// marked); the counts per fix and in all; filters by status and fix. Roles that may upload data accept
// or reject items (one at a time or the selected ones, with an optional reason) and commit a fix's
// accepted rows into a new version; other roles read the queue.
import { api, h, proj, canTrain, t, fmtNum, fmtDate, errorBox } from "./common.js";

const STATUSES = ["pending", "accepted", "rejected", "all"];
const LIMIT = 200;
const MAX_DIFF_TOKENS = 600; // longer texts are shown without marks (the word diff is quadratic)
// Diff tokens: spaces, numbers (so "117" matches the "117" of "The answer is 117."), one Chinese
// character each (Chinese has no spaces), runs of other letters, any other single character.
const TOKEN = /\s+|\d+(?:\.\d+)?|\p{Script=Han}|[^\s\d\p{Script=Han}\p{P}\p{S}]+|./gsu;

export async function render(view, rest, params) {
  const status = STATUSES.includes(params.status) ? params.status : "pending";
  const fix = params.fix || "";
  const q = new URLSearchParams({ status, limit: String(LIMIT) });
  if (fix) q.set("fix", fix);
  const [fixes, items] = await Promise.all([api(`${proj()}/reviews/fixes`), api(`${proj()}/reviews?${q}`)]);
  const may = canTrain();
  const go = (s, f) => (location.hash = `#/review?${new URLSearchParams({ status: s, ...(f ? { fix: f } : {}) })}`);
  view.replaceChildren(h("h1", {}, t("review_title")), h("p", { class: "muted" }, t("review_intro")));
  if (!fixes.length) { view.append(h("p", { class: "muted", id: "review-none" }, t("review_none"))); return; }

  const countsBox = h("p", { id: "review-counts" });
  const fixesBox = h("div", { id: "review-fixes-box" });
  const commitMsg = h("div", { id: "review-commit-msg" });
  const chosen = (list) => list.filter((f) => !fix || f.version === fix || f.fix_version === fix);
  const fixRef = new Map(fixes.map((f) => [f.fix_version, f.version]));
  /** The counts (of the chosen fix, or of all) and the fixes' table, redrawn after every decision. */
  function drawSummary(list) {
    const sum = (k) => chosen(list).reduce((n, f) => n + f[k], 0);
    countsBox.replaceChildren(...["pending", "accepted", "rejected"].flatMap((s, i) => [i ? " · " : null,
      h("span", { class: `review-count ${s}`, "data-status": s }, h("b", {}, fmtNum(sum(s))), " ", t("review_status_" + s))]).filter(Boolean));
    countsBox.dataset.pending = sum("pending"); countsBox.dataset.accepted = sum("accepted"); countsBox.dataset.rejected = sum("rejected");
    fixesBox.replaceChildren(h("table", { id: "review-fixes" },
      h("tr", {}, [t("review_fix_version"), t("review_status_pending"), t("review_status_accepted"), t("review_status_rejected"), t("review_committed_versions"), ""]
        .map((x, i) => h("th", { class: i > 0 && i < 4 ? "num" : null }, x))),
      list.map((f) => fixRow(f, may, go, status, async () => {
        try {
          const v = await api(`${proj()}/datasets/refs/${encodeURIComponent(f.fix_version)}/reviewed`, { method: "POST" });
          commitMsg.replaceChildren(h("p", { class: "ok", id: "review-committed" }, t("review_committed", { n: fmtNum(v.params.accepted) }), " ",
            h("a", { href: `#/datasets/${encodeURIComponent(v.dataset)}?ref=${encodeURIComponent(`${v.dataset}@${v.number}`)}`, id: "review-new-version" }, `${v.dataset}@${v.number}`),
            ` · ${fmtNum(v.num_rows)} ${t("rows")}`));
          await refresh();
        } catch (e) { commitMsg.replaceChildren(errorBox(e)); }
      }))));
  }
  async function refresh() {
    try { drawSummary(await api(`${proj()}/reviews/fixes`)); } catch (e) { commitMsg.replaceChildren(errorBox(e)); }
  }
  drawSummary(fixes);

  const sSel = h("select", { id: "review-status", onchange: () => go(sSel.value, fix) },
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s === "all" ? t("review_all_statuses") : t("review_status_" + s))));
  const fSel = h("select", { id: "review-fix", onchange: () => go(status, fSel.value) }, h("option", { value: "" }, t("review_all_fixes")),
    fixes.map((f) => h("option", { value: f.version, selected: f.version === fix || f.fix_version === fix }, f.version)));
  view.append(countsBox, fixesBox, commitMsg, h("div", { class: "row" }, h("label", {}, t("state"), " ", sSel), h("label", {}, t("review_fix"), " ", fSel)));

  const total = status === "all" ? chosen(fixes).reduce((n, f) => n + f.pending + f.accepted + f.rejected, 0) : chosen(fixes).reduce((n, f) => n + f[status], 0);
  if (items.length < total) view.append(h("p", { class: "muted", id: "review-truncated" }, t("review_shown_first", { n: fmtNum(items.length), total: fmtNum(total) })));
  if (!items.length) { view.append(h("p", { class: "muted", id: "review-empty" }, t("review_empty"))); return; }

  const list = h("div", { id: "review-items" });
  const cards = new Map(); // item id -> its card's controls
  const decide = async (id, accept, reason) => {
    const c = cards.get(id);
    c.error.replaceChildren();
    try {
      const item = await api(`${proj()}/reviews/${encodeURIComponent(id)}`, { method: "POST", body: { accept, reason } });
      const fresh = itemCard(item, fixRef, false);
      c.el.replaceWith(fresh.el);
      cards.set(id, fresh);
      return true;
    } catch (e) { c.error.replaceChildren(errorBox(e)); return false; }
  };
  items.forEach((item) => {
    const c = itemCard(item, fixRef, may, decide, async () => { updateSelected(); await refresh(); });
    cards.set(item.id, c); list.append(c.el);
  });

  const pendingOf = () => [...cards.entries()].filter(([, c]) => c.check && c.el.isConnected);
  const selectedCount = h("span", { id: "review-selected", class: "muted" });
  const all = h("input", { type: "checkbox", id: "review-select-all", onchange: () => { pendingOf().forEach(([, c]) => (c.check.checked = all.checked)); updateSelected(); } });
  function updateSelected() {
    const n = pendingOf().filter(([, c]) => c.check.checked).length;
    selectedCount.textContent = t("review_selected", { n });
    bulkBtns.forEach((b) => (b.disabled = !n));
  }
  list.addEventListener("change", (ev) => { if (ev.target.classList.contains("review-check")) updateSelected(); });
  const bulkReason = h("input", { id: "review-bulk-reason", placeholder: t("review_reason"), size: 40, maxlength: 2000 });
  const bulkMsg = h("span", { id: "review-bulk-msg", class: "muted" });
  const bulk = (accept) => async () => {
    const chosenIds = pendingOf().filter(([, c]) => c.check.checked).map(([id, c]) => [id, c.reason.value.trim() || bulkReason.value.trim()]);
    bulkBtns.forEach((b) => (b.disabled = true));
    let done = 0;
    // One request per item (the API decides items one by one); a refused item keeps its error at its card.
    for (const [id, reason] of chosenIds) {
      if (await decide(id, accept, reason)) done++;
      bulkMsg.textContent = t("review_decided", { done, n: chosenIds.length });
    }
    all.checked = false;
    updateSelected();
    await refresh();
  };
  const bulkBtns = [h("button", { id: "review-accept-selected", onclick: bulk(true) }, t("review_accept_selected")),
    h("button", { id: "review-reject-selected", class: "danger", onclick: bulk(false) }, t("review_reject_selected"))];
  const hasPending = items.some((i) => i.status === "pending");
  view.append(may && hasPending ? h("div", { class: "row card", id: "review-bulk" }, h("label", {}, all, " ", t("review_select_all")), selectedCount, bulkReason, ...bulkBtns, bulkMsg)
    : !may ? h("p", { class: "muted", id: "review-read-only" }, t("review_read_only")) : null, list);
  if (may && hasPending) updateSelected();
}

/** A fix's row: its version (which filters the queue to it), its counts, the versions made from its
 * accepted rows and, for roles that may, the commit of the accepted rows not committed yet. */
function fixRow(f, may, go, status, commit) {
  const last = f.committed.at(-1);
  const fresh = f.accepted > 0 && (!last || last.accepted !== f.accepted);
  const btn = may && fresh ? h("button", { class: "review-commit", "data-fix": f.fix_version, onclick: async () => { btn.disabled = true; await commit(); } },
    t("review_commit", { n: fmtNum(f.accepted) })) : null;
  const dataset = f.version.split("@")[0];
  return h("tr", { "data-fix": f.fix_version, "data-version": f.version },
    h("td", {}, h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); go(status, f.version); } }, f.version), " ",
      h("a", { class: "muted", href: `#/datasets/${encodeURIComponent(dataset)}?ref=${encodeURIComponent(f.version)}` }, "↗")),
    ...["pending", "accepted", "rejected"].map((s) => h("td", { class: "num", "data-status": s }, fmtNum(f[s]))),
    h("td", { class: "review-made" }, f.committed.length ? f.committed.flatMap((c, i) => [i ? ", " : null,
      h("a", { href: `#/datasets/${encodeURIComponent(dataset)}?ref=${encodeURIComponent(c.version)}`, title: fmtDate(c.created_at) }, c.version), ` (+${fmtNum(c.accepted)})`]) : "—"),
    h("td", {}, btn || (f.accepted && last && last.accepted === f.accepted ? h("span", { class: "muted" }, t("review_up_to_date")) : null)));
}

/** One held item as a card: kind, row, fix, status; the question; the answer (a rewrite: before and after,
 * removed and added words marked); for roles that may and while pending, the reason and the decision. */
function itemCard(item, fixRef, may, decide, after) {
  const error = h("div", { class: "review-error" });
  const pending = item.status === "pending";
  const check = may && pending ? h("input", { type: "checkbox", class: "review-check", "aria-label": item.row_id }) : null;
  const reason = may && pending ? h("input", { class: "review-reason", placeholder: t("review_reason"), size: 50, maxlength: 2000 }) : null;
  const act = (accept) => async (ev) => {
    const btn = ev.currentTarget;
    btn.disabled = true;
    if (!(await decide(item.id, accept, reason.value.trim()))) btn.disabled = false;
    await after();
  };
  const [before, afterText] = item.kind === "rewritten" && item.original_response !== null ? wordDiff(item.original_response, item.response) : [null, null];
  const el = h("article", { class: `card review-item ${item.status}`, "data-id": item.id, "data-kind": item.kind, "data-status": item.status, "data-row": item.row_id },
    h("div", { class: "row review-head" }, check, h("span", { class: `review-kind ${item.kind}` }, t("review_kind_" + item.kind)),
      h("code", {}, item.row_id), h("span", { class: "muted" }, t("review_from", { v: fixRef.get(item.fix_version) || item.fix_version })),
      h("span", { class: `state review-state ${item.status === "accepted" ? "succeeded" : item.status === "rejected" ? "failed" : ""}` }, t("review_status_" + item.status)),
      item.decided_by ? h("span", { class: "muted" }, t("review_by", { who: item.decided_by })) : null,
      item.reason ? h("span", { class: "review-given-reason" }, `“${item.reason}”`) : null),
    h("div", { class: "review-label" }, t("review_question")), h("div", { class: "review-text review-question" }, item.question),
    before ? h("div", { class: "review-ba" },
      h("div", {}, h("div", { class: "review-label" }, t("review_before")), h("div", { class: "review-text review-before" }, before)),
      h("div", {}, h("div", { class: "review-label" }, t("review_after")), h("div", { class: "review-text review-after" }, afterText)))
      : h("div", {}, h("div", { class: "review-label" }, t(item.kind === "generated" ? "review_response_new" : "review_response")), h("div", { class: "review-text review-after" }, item.response)),
    may && pending ? h("div", { class: "row review-actions" }, reason, h("button", { class: "review-accept", onclick: act(true) }, t("review_accept")),
      h("button", { class: "review-reject danger", onclick: act(false) }, t("review_reject"))) : null, error);
  return { el, check, reason, error };
}

/** The two texts as nodes with the words only the first has in <del> and those only the second has in
 * <ins> (a longest common subsequence over the tokens below). */
function wordDiff(a, b) {
  const x = a.match(TOKEN) || [], y = b.match(TOKEN) || [];
  if (x.length > MAX_DIFF_TOKENS || y.length > MAX_DIFF_TOKENS) return [[a], [b]];
  // L[i][j]: the common subsequence's length of x[:i] and y[:j]; walked back from the ends, so a
  // repeated token keeps its last place ("The answer is 117." keeps the original answer "117").
  const L = Array.from({ length: x.length + 1 }, () => new Uint16Array(y.length + 1));
  for (let i = 1; i <= x.length; i++) for (let j = 1; j <= y.length; j++) L[i][j] = x[i - 1] === y[j - 1] ? L[i - 1][j - 1] + 1 : Math.max(L[i - 1][j], L[i][j - 1]);
  const left = [], right = []; // [tag or null, text] per token, from the end
  const put = (out, tag, s) => out.push([tag, s]);
  let i = x.length, j = y.length;
  while (i > 0 || j > 0) {
    if (i > 0 && j > 0 && x[i - 1] === y[j - 1]) { put(left, null, x[--i]); put(right, null, y[--j]); }
    else if (j > 0 && (i === 0 || L[i][j - 1] >= L[i - 1][j])) put(right, "ins", y[--j]);
    else put(left, "del", x[--i]);
  }
  return [nodes(left.reverse()), nodes(right.reverse())];
}

/** Runs of tokens with one tag as one element (a marked run that is only spaces stays plain). */
function nodes(tokens) {
  const runs = [];
  for (const [tag, s] of tokens) {
    if (runs.length && runs.at(-1)[0] === tag) runs.at(-1)[1] += s;
    else runs.push([tag, s]);
  }
  return runs.map(([tag, s]) => (tag && s.trim() ? h(tag, {}, s) : s));
}
