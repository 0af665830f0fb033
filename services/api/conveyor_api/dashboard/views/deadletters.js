// What the projector parked instead of applying (#dead-letters): GET /dead-letters on load,
// on Refresh, and every 30 s while the tab is visible. Hooks: tr[data-seq] with .kind,
// .job, .reason, .parked, a <details> holding the message; #dead-letters-count.

import { h, setText, shortId, timeEl } from "../util.js";

const REFRESH_MS = 30000;
const PAGE = 50;

export function mountDeadLetters(root, { api }) {
  const tbody = root.querySelector("tbody");
  const count = root.querySelector("#dead-letters-count");
  const empty = root.querySelector(".panel-empty");
  const errorBox = root.querySelector(".panel-error");
  const more = root.querySelector(".dead-more");
  const refreshButton = root.querySelector(".dead-refresh");
  let timer = null;

  function row(d) {
    return h("tr", { dataset: { seq: d.seq, kind: d.kind } },
      h("td", { class: "seq mono", text: d.seq }),
      h("td", { class: "kind", text: d.kind }),
      h("td", { class: "job" }, d.job_id
        ? h("a", { href: `#/jobs/${encodeURIComponent(d.job_id)}`, class: "mono", title: d.job_id, text: shortId(d.job_id) })
        : h("span", { class: "muted", title: d.subject, text: "—" })),
      h("td", { class: "reason" },
        h("div", { text: d.reason }),
        h("details", {},
          h("summary", { text: `message (${d.raw_size} bytes${d.truncated ? ", start shown" : ""})` }),
          h("div", { class: "muted small mono", text: d.subject }),
          h("pre", { text: d.raw }))),
      h("td", { class: "parked" }, timeEl(d.parked_at)));
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const page = await api.deadLetters({ limit: PAGE });
      const items = page?.items ?? [];
      tbody.replaceChildren(...items.map(row));
      setText(count, page?.next != null ? `${items.length}+` : items.length);
      empty.hidden = items.length > 0;
      more.hidden = page?.next == null;
      errorBox.hidden = true;
    } catch (err) {
      errorBox.hidden = false;
      setText(errorBox, `Could not load dead letters: ${err.detail || err.message}`);
    } finally {
      if (!document.hidden) timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  refreshButton.addEventListener("click", refresh);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  });
  refresh();
  return { refresh };
}
