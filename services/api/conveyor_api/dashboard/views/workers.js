// Live workers (#workers): GET /workers every 5 s; heartbeat ages tick locally in between.
// A worker whose last heartbeat is older than STALE_S (two beats of 5 s) is flagged stale:
// its row gets .stale-worker and a "stale" badge (the API drops it after its TTL, 15 s).

import { fmtSeconds, h, setText, shortId } from "../util.js";

const REFRESH_MS = 5000;
const STALE_S = 10;

export function mountWorkers(root, { api }) {
  const tbody = root.querySelector("tbody");
  const count = root.querySelector(".count");
  const errorBox = root.querySelector(".panel-error");
  const empty = root.querySelector(".panel-empty");
  let workers = [];
  let fetchedAt = 0;
  let timer = null;

  function ageOf(worker) {
    return (worker.heartbeat_age_s ?? 0) + (Date.now() - fetchedAt) / 1000;
  }

  function render() {
    setText(count, workers.length);
    empty.hidden = workers.length > 0;
    tbody.replaceChildren(...workers.map((w) => {
      const age = ageOf(w);
      const running = w.running_job_ids ?? [];
      const stale = age > STALE_S;
      const classes = [w.stopping ? "stopping" : "", stale ? "stale-worker" : ""].join(" ").trim();
      return h("tr", { dataset: { workerId: w.id, stale: stale ? "true" : "false" }, class: classes || null },
        h("td", { class: "worker" },
          h("div", { class: "id mono", title: w.id, text: w.id }),
          h("div", { class: "host muted", title: `${w.host} (pid ${w.pid})` },
            h("span", { class: "host-name", text: w.host }), ` · pid ${w.pid}`),
          w.stopping ? h("span", { class: "badge status-stopped", text: "stopping" }) : null,
          h("span", {
            class: "badge status-failed stale-flag", text: "stale", hidden: !stale,
            title: `no heartbeat for more than ${STALE_S} s`,
          })),
        h("td", { class: "running", title: running.join("\n") || "idle" },
          h("span", { class: "running-count", text: running.length }),
          h("span", { class: "muted" }, " / ", h("span", { class: "concurrency", text: w.concurrency })),
          running.length ? h("div", { class: "job-links" }, running.slice(0, 3).map((id) => h("a", {
            href: `#/jobs/${encodeURIComponent(id)}`, class: "mono", title: id, text: shortId(id),
          }))) : null),
        h("td", {
          class: `heartbeat${age > STALE_S ? " stale" : ""}`,
          dataset: { age: age.toFixed(1) },
          title: `last heartbeat ${w.last_heartbeat_at}`,
          text: `${fmtSeconds(age)} ago`,
        }));
    }));
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const data = await api.workers();
      workers = (data?.items ?? []).slice().sort((a, b) => a.id.localeCompare(b.id));
      fetchedAt = Date.now();
      errorBox.hidden = true;
      render();
    } catch (err) {
      errorBox.hidden = false;
      setText(errorBox, `Could not load workers: ${err.detail || err.message}`);
    } finally {
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  // Heartbeat ages move every second without asking the API.
  setInterval(() => {
    for (const td of tbody.querySelectorAll("td.heartbeat")) {
      const worker = workers.find((w) => w.id === td.parentElement.dataset.workerId);
      if (!worker) continue;
      const age = ageOf(worker);
      td.dataset.age = age.toFixed(1);
      const stale = age > STALE_S;
      td.classList.toggle("stale", stale);
      td.parentElement.classList.toggle("stale-worker", stale);
      td.parentElement.dataset.stale = stale ? "true" : "false";
      const flag = td.parentElement.querySelector(".stale-flag");
      if (flag) flag.hidden = !stale;
      setText(td, `${fmtSeconds(age)} ago`);
    }
  }, 1000);

  refresh();
  return { refresh };
}
