// The job list: filters kept in the URL, a table updated row by row from the store, and
// "load more". Hooks: table#jobs, tr[data-job-id], .status, .progress, button[data-action].

import { actionButtons, updateActionButtons } from "../actions.js";
import { isSelected } from "../selection.js";
import { filterToSearch } from "../store.js";
import { mountBulk } from "./bulk.js";
import {
  STATUSES, clampPercent, debounce, fmtPercent, fmtTime, frameScheduler, h, setAttr, setText,
  shortId,
} from "../util.js";

const ROWS_PER_FRAME = 150;
const BUSY_ROWS = 20;

export function mountJobs(root, { api, store, actions, onTypeSeen = () => {} }) {
  const table = root.querySelector("#jobs");
  const tbody = table.tBodies[0];
  const empty = root.querySelector("#jobs-empty");
  const count = root.querySelector("#jobs-count");
  const loadMore = root.querySelector("#load-more");
  const listError = root.querySelector("#jobs-error");
  const form = root.querySelector("#filters");

  const rows = new Map(); // id -> <tr>
  const dirty = new Set();
  let selected = null;
  let allDirty = false;
  const schedule = frameScheduler(render);
  const calm = debounce(() => table.classList.remove("busy"), 1000);
  const pageBox = table.querySelector("#select-page");
  const bulk = mountBulk(root, {
    api,
    store,
    onChange: () => {
      allDirty = true;
      schedule();
    },
  });

  // ------------------------------------------------------------------------ filters

  function readForm() {
    const data = new FormData(form);
    return {
      statuses: STATUSES.filter((s) => data.getAll("status").includes(s)),
      priority: String(data.get("filter-priority") || ""),
      type: String(data.get("filter-type") || "").trim(),
      q: String(data.get("q") || "").trim(),
    };
  }

  function writeForm(filter) {
    for (const box of form.querySelectorAll('input[name="status"]')) {
      box.checked = filter.statuses.includes(box.value);
    }
    form.elements["filter-priority"].value = filter.priority;
    form.elements["filter-type"].value = filter.type;
    form.elements.q.value = filter.q;
  }

  function applyFilter() {
    const filter = readForm();
    if (store.setFilter(filter)) {
      const url = location.pathname + filterToSearch(filter, location.search) + location.hash;
      history.replaceState(history.state, "", url);
    }
  }

  const applySoon = debounce(applyFilter, 300);
  form.addEventListener("change", applyFilter);
  form.addEventListener("input", (e) => {
    if (e.target.name === "q" || e.target.name === "filter-type") applySoon();
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    applyFilter();
  });
  form.addEventListener("reset", () => setTimeout(applyFilter)); // after the fields reset
  writeForm(store.list.filter);

  // ------------------------------------------------------------------------ rows

  function buildRow(id) {
    const link = h("a", { href: `#/jobs/${encodeURIComponent(id)}`, class: "mono", title: id },
      shortId(id));
    const bar = h("progress", { max: 100, value: 0, "aria-label": `Progress of job ${shortId(id)}` });
    const refs = {
      type: h("td", { class: "type" }),
      priorityBadge: h("span", { class: "badge" }),
      statusBadge: h("span", { class: "badge" }),
      progressCell: h("td", { class: "progress" }),
      bar,
      pct: h("span", { class: "pct" }),
      note: h("span", { class: "note" }),
      attempt: h("td", { class: "attempt" }),
      created: h("time", {}),
      buttons: actionButtons(id),
      pick: h("input", {
        type: "checkbox", name: "select", value: id, class: "bulk-only",
        "aria-label": `Select job ${shortId(id)}`,
      }),
    };
    refs.progressCell.append(h("div", { class: "bar-line" }, bar, refs.pct), refs.note);
    const tr = h("tr", { dataset: { jobId: id } },
      h("td", { class: "select bulk-only" }, refs.pick),
      h("td", { class: "id" }, link),
      refs.type,
      h("td", { class: "priority" }, refs.priorityBadge),
      h("td", { class: "status" }, refs.statusBadge),
      refs.progressCell,
      refs.attempt,
      h("td", { class: "created" }, refs.created),
      h("td", { class: "actions" }, h("div", { class: "btn-group" }, refs.buttons)),
    );
    tr.refs = refs;
    return tr;
  }

  function updateRow(tr, job) {
    const r = tr.refs;
    const id = job.id;
    setAttr(tr, "data-status", job.status);
    setAttr(tr, "data-stop-requested", job.stop_requested ? "true" : "false");
    tr.classList.toggle("selected", id === selected);
    setText(r.type, job.type);
    setAttr(r.type, "title", job.type);
    setText(r.priorityBadge, job.priority);
    setAttr(r.priorityBadge, "class", `badge priority-${job.priority}`);
    setText(r.statusBadge, job.status);
    setAttr(r.statusBadge, "class",
      `badge status-${job.status}${job.stop_requested ? " stopping" : ""}`);
    setAttr(r.statusBadge, "title", job.stop_requested ? "stop requested" : job.status);
    const pct = clampPercent(job.progress);
    if (r.bar.value !== pct) r.bar.value = pct;
    setAttr(r.bar, "data-value", pct);
    setAttr(r.bar, "aria-valuenow", pct);
    setAttr(r.progressCell, "data-value", pct);
    setText(r.pct, fmtPercent(pct));
    const note = job.stop_requested ? "stop requested" : (job.message || "");
    setText(r.note, note);
    setAttr(r.note, "title", note);
    setText(r.attempt, job.attempt);
    setAttr(r.attempt, "data-attempt", job.attempt);
    setAttr(r.attempt, "title",
      `${job.attempt} attempt(s) started; up to ${job.max_attempts} per run (a restart gives a fresh budget)`);
    setAttr(r.created, "datetime", job.created_at);
    setAttr(r.created, "title", job.created_at);
    setText(r.created, fmtTime(job.created_at));
    updateActionButtons(r.buttons, id, store.allowed(job), actions);
    const picked = isSelected(bulk.selection, id);
    if (r.pick.checked !== picked) r.pick.checked = picked;
    tr.classList.toggle("picked", picked);
  }

  function render() {
    const L = store.list;
    for (const [id, tr] of rows) {
      if (!L.set.has(id)) {
        tr.remove();
        rows.delete(id);
      }
    }
    let next = tbody.firstElementChild;
    let built = 0;
    let unbuilt = false;
    for (const id of L.ids) {
      let tr = rows.get(id);
      if (!tr) {
        if (built >= ROWS_PER_FRAME) { // the rest of a burst's new rows in the next frames
          unbuilt = true;
          continue;
        }
        built += 1;
        tr = buildRow(id);
        rows.set(id, tr);
        dirty.add(id);
      }
      if (tr === next) next = next.nextElementSibling;
      else tbody.insertBefore(tr, next);
    }
    if (allDirty) {
      for (const id of rows.keys()) dirty.add(id);
      allDirty = false;
    }
    // A burst changes many rows: at most ROWS_PER_FRAME of them are redrawn per frame (the
    // rest in the next ones), without transitions, so no frame runs long.
    if (dirty.size > BUSY_ROWS) {
      table.classList.add("busy");
      calm();
    }
    let budget = ROWS_PER_FRAME;
    for (const id of dirty) {
      if (budget-- <= 0) break;
      dirty.delete(id);
      const tr = rows.get(id);
      const job = store.get(id);
      if (tr && job) {
        updateRow(tr, job);
        onTypeSeen(job.type);
      }
    }
    if (dirty.size || unbuilt) schedule();

    const n = L.ids.length;
    const sel = bulk.selection;
    const picked = sel.mode === "filter" ? n : L.ids.filter((id) => sel.ids.has(id)).length;
    pageBox.checked = n > 0 && picked === n;
    pageBox.indeterminate = picked > 0 && picked < n;
    pageBox.disabled = n === 0;
    setText(count, L.loaded ? `${n}${L.nextCursor ? "+" : ""} shown` : "");
    empty.hidden = n > 0 || !L.loaded;
    setText(empty, L.loaded && !n ? "No jobs match these filters." : "");
    loadMore.hidden = !L.loaded || !L.nextCursor;
    loadMore.disabled = L.loading;
    setText(loadMore, L.loading ? "Loading…" : "Load more");
    table.setAttribute("aria-busy", L.loading ? "true" : "false");
    root.classList.toggle("loading", L.loading && !L.loaded);
    listError.hidden = !L.error;
    setText(listError, L.error ? `Could not load jobs: ${L.error}` : "");
  }

  // ------------------------------------------------------------------------ wiring

  store.on("list", schedule);
  store.on("actions", () => {
    allDirty = true; // the API taught the page what another state allows
    schedule();
  });
  pageBox.addEventListener("change", () => bulk.togglePage(pageBox.checked));
  store.on("job", (id) => {
    if (rows.has(id) || store.list.set.has(id)) {
      dirty.add(id);
      schedule();
    }
  });

  loadMore.addEventListener("click", () => store.loadMore());
  tbody.addEventListener("change", (e) => {
    const box = e.target.closest('input[name="select"]');
    if (box) bulk.toggle(box.value, box.checked);
  });
  tbody.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-job-id]");
    if (!tr) return;
    const button = e.target.closest("button[data-action]");
    if (button) {
      button.disabled = true;
      actions.run(tr.dataset.jobId, button.dataset.action);
      return;
    }
    if (e.target.closest("a, button, input, select, textarea, td.select")) return;
    location.hash = `#/jobs/${encodeURIComponent(tr.dataset.jobId)}`;
  });

  render();

  return {
    bulk,
    setSelected(id) {
      const before = selected;
      selected = id;
      for (const other of [before, id]) if (other && rows.has(other)) dirty.add(other);
      schedule();
    },
  };
}
