// Operator actions (stop, restart, delete) shared by the list and the detail view, and the
// notice area that reports their failures.

import { h, shortId } from "./util.js";

const LABELS = { stop: "Stop", restart: "Restart", delete: "Delete" };

/** A notice area: notify(text, kind) shows a dismissible message; notify(null) clears it. */
export function createNotifier(root) {
  let timer = null;
  const clear = () => {
    clearTimeout(timer);
    root.replaceChildren();
    root.hidden = true;
  };
  return (text, kind = "error") => {
    clear();
    if (!text) return;
    root.dataset.kind = kind;
    root.append(
      h("span", { class: "notice-text", text }),
      h("button", {
        type: "button", class: "ghost", "aria-label": "Dismiss", text: "×", onclick: clear,
      }),
    );
    root.hidden = false;
    timer = setTimeout(clear, kind === "error" ? 10000 : 4000);
  };
}

export function createActions({ api, store, notify }) {
  const busy = new Set();

  async function run(id, action) {
    const key = `${id}:${action}`;
    if (busy.has(key) || !LABELS[action]) return;
    busy.add(key);
    store.touch(id);
    try {
      if (action === "stop") store.ingest(await api.stopJob(id));
      else if (action === "restart") store.ingest(await api.restartJob(id));
      else {
        await api.deleteJob(id);
        store.markDeleted(id);
      }
    } catch (err) {
      notify(`${LABELS[action]} ${shortId(id)}: ${err.detail || err.message}`, "error");
      if (err.status === 404) store.markDeleted(id);
    } finally {
      busy.delete(key);
      store.touch(id);
    }
  }

  return {
    run,
    isBusy: (id, action) => busy.has(`${id}:${action}`),
  };
}

/** The three action buttons, with stable hooks: button[data-action="stop"|"restart"|"delete"]. */
export function actionButtons(id) {
  return Object.entries(LABELS).map(([action, label]) => h("button", {
    type: "button",
    class: `btn-action btn-${action}`,
    dataset: { action },
    "aria-label": `${label} job ${shortId(id)}`,
    title: `${label} job ${id}`,
    text: label,
  }));
}

/** Enable each button only when the job's state allows its action (and it is not in flight). */
export function updateActionButtons(buttons, id, allowed, actions) {
  for (const button of buttons) {
    const action = button.dataset.action;
    const disabled = !allowed[action] || actions.isBusy(id, action);
    if (button.disabled !== disabled) button.disabled = disabled;
  }
}
