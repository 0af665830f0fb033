// Bulk actions on the job list (#bulk-bar): the rows picked with their checkboxes, or every
// job matching the filter (counted by the server first); Stop / Restart / Delete ask in
// #bulk-confirm (what a dry run says would happen, an optional reason) before
// POST /api/v1/jobs/bulk does it. Hooks: #bulk-bar, #bulk-count, #bulk-all,
// button[data-bulk=<action>], #bulk-confirm (#bulk-reason, #bulk-yes, #bulk-no), #bulk-result.

import {
  BULK_ACTIONS, MAX_BULK, allMatching, bulkBody, confirmText, emptySelection, resultText,
  selectedCount, toggle, togglePage,
} from "../selection.js";
import { h, setText, shortId } from "../util.js";

const REFUSED_SHOWN = 20;

export function mountBulk(root, { api, store, onChange }) {
  const bar = root.querySelector("#bulk-bar");
  const count = root.querySelector("#bulk-count");
  const allButton = root.querySelector("#bulk-all");
  const clearButton = root.querySelector("#bulk-clear");
  const dialog = root.querySelector("#bulk-confirm");
  const dialogText = root.querySelector("#bulk-confirm-text");
  const reason = root.querySelector("#bulk-reason");
  const yes = root.querySelector("#bulk-yes");
  const no = root.querySelector("#bulk-no");
  const result = root.querySelector("#bulk-result");
  const buttons = [...bar.querySelectorAll("button[data-bulk]")];

  let sel = emptySelection();
  let pending = null; // {action, body, opener} while the confirmation shows
  let busy = false;

  const shownIds = () => store.list.ids;

  function set(next) {
    sel = next;
    render();
    onChange();
  }

  function render() {
    const n = selectedCount(sel);
    let text;
    if (sel.mode === "filter") {
      text = n === null ? "Counting the jobs matching this filter…"
        : `All ${n.toLocaleString()} job${n === 1 ? "" : "s"} matching this filter selected`;
    } else text = n ? `${n} selected` : "None selected";
    setText(count, text);
    for (const b of buttons) b.disabled = busy || !n;
    clearButton.hidden = !(n || sel.mode === "filter");
    allButton.disabled = busy || sel.mode === "filter";
    bar.dataset.mode = sel.mode;
  }

  async function selectAll() {
    const filter = { ...store.list.filter };
    set(allMatching(filter, null));
    try {
      // A dry run counts what the filter matches (any action counts the same jobs).
      const plan = await api.bulk(bulkBody(allMatching(filter, 0), "restart"), { dryRun: true });
      if (sel.mode !== "filter") return;
      set(allMatching(filter, plan.matched));
    } catch (err) {
      set(emptySelection());
      show(`Could not count the matching jobs: ${err.detail || err.message}`, "error");
    }
  }

  function show(text, kind = "ok", refused = []) {
    result.replaceChildren(h("span", { text }));
    if (refused.length) {
      result.append(h("ul", { class: "bulk-refused" }, refused.slice(0, REFUSED_SHOWN).map((r) => h("li", {},
        h("a", { href: `#/jobs/${encodeURIComponent(r.id)}`, class: "mono", title: r.id, text: shortId(r.id) }),
        `: ${r.reason}`))));
      if (refused.length > REFUSED_SHOWN) {
        result.append(h("p", { class: "muted small", text: `… and ${refused.length - REFUSED_SHOWN} more` }));
      }
    }
    result.dataset.kind = kind;
    result.hidden = false;
  }

  async function ask(action, opener) {
    if (busy) return;
    const body = bulkBody(sel, action);
    if ((body.ids?.length ?? 0) > MAX_BULK) {
      show(`At most ${MAX_BULK.toLocaleString()} jobs at once; select fewer.`, "error");
      return;
    }
    busy = true;
    render();
    try {
      const plan = await api.bulk(body, { dryRun: true });
      pending = { action, body, opener };
      setText(dialogText, confirmText(action, plan));
      setText(yes, `${action[0].toUpperCase()}${action.slice(1)} ${plan.matched} job${plan.matched === 1 ? "" : "s"}`);
      yes.className = action === "delete" ? "danger" : "primary";
      reason.value = "";
      dialog.hidden = false;
      reason.focus();
    } catch (err) {
      show(`Could not check the ${action}: ${err.detail || err.message}`, "error");
    } finally {
      busy = false;
      render();
    }
  }

  function cancel() {
    if (!pending) return;
    const { opener } = pending;
    pending = null;
    dialog.hidden = true;
    opener?.focus();
  }

  async function confirm() {
    if (!pending || busy) return;
    const { action } = pending;
    const body = { ...pending.body };
    const why = reason.value.trim();
    if (why) body.reason = why;
    pending = null;
    dialog.hidden = true;
    busy = true;
    render();
    setText(result, `${action[0].toUpperCase()}${action.slice(1)}ing…`);
    result.hidden = false;
    try {
      const out = await api.bulk(body);
      show(resultText(action, out), out.refused.length ? "warn" : "ok", out.refused);
      sel = emptySelection();
      onChange();
      if (action === "delete") store.reload();
    } catch (err) {
      show(`Bulk ${action} failed: ${err.detail || err.message}`, "error");
    } finally {
      busy = false;
      render();
      result.focus(); // the buttons are disabled now (nothing selected): say what happened
    }
  }

  allButton.addEventListener("click", selectAll);
  clearButton.addEventListener("click", () => set(emptySelection()));
  for (const b of buttons) b.addEventListener("click", () => ask(b.dataset.bulk, b));
  yes.addEventListener("click", confirm);
  no.addEventListener("click", cancel);
  dialog.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.stopPropagation();
      cancel();
    } else if (e.key === "Enter" && e.target === reason) {
      e.preventDefault();
      confirm();
    }
  });
  // A new filter is a new list: the selection does not carry over.
  store.on("filter", () => set(emptySelection()));
  render();

  return {
    get selection() {
      return sel;
    },
    toggle(id, on) {
      set(toggle(sel, id, on, shownIds()));
    },
    togglePage(on) {
      set(togglePage(sel, shownIds(), on));
    },
    actions: BULK_ACTIONS,
  };
}
