// Recurring schedules (#schedules): the list from GET /schedules (on load, after every action,
// and every 10 s while the tab is visible), pause / resume (PATCH {enabled}), delete after an
// inline confirmation, and #schedule-form (POST /schedules). The form's job types come from
// GET /types; a problem's `errors` are shown at the field they name, the rest in the form's
// error area.

import { h, setAttr, setText, timeEl } from "../util.js";

const REFRESH_MS = 10_000;
const NOT_CREATED = "The schedule was not created: see the marked fields.";

/** The form control a problem's field names ("job.payload.seconds" → "payload"), or null. */
export function controlFor(field) {
  const [head, next] = String(field ?? "").split(".");
  if (head === "job") return { type: "type", payload: "payload", priority: "priority" }[next] ?? null;
  return ["name", "cron", "timezone"].includes(head) ? head : null;
}

/** The browser's IANA time zone (what the form offers first). */
export function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

/** A payload to start from: each default of the type's schema. */
function examplePayload(schema) {
  const example = {};
  for (const [name, prop] of Object.entries(schema?.properties ?? {})) {
    if (prop && "default" in prop) example[name] = prop.default;
  }
  return JSON.stringify(example);
}

export function mountSchedules(root, { api }) {
  const tbody = root.querySelector("#schedules-table tbody");
  const count = root.querySelector("#schedules-count");
  const errorBox = root.querySelector("#schedules-error");
  const empty = root.querySelector("#schedules-empty");
  const rows = new Map(); // name → {schedule, tr, cells, buttons, busy}
  let loadError = null;
  let actionError = null;
  let timer = null;
  let generation = 0;

  function showErrors() {
    const messages = [actionError, loadError].filter(Boolean);
    errorBox.replaceChildren(...messages.map((text) => h("p", { text })));
    errorBox.hidden = messages.length === 0;
  }

  // ------------------------------------------------------------------------ rows

  function buildRow(name) {
    // Each button's name says which schedule it acts on ("Pause nightly").
    const button = (action, text, label, extra = "") => h("button", {
      type: "button", class: `btn-action ${extra}`.trim(), dataset: { action }, "aria-label": label, text,
    });
    const buttons = {
      toggle: button("pause", "Pause", `Pause ${name}`),
      remove: button("delete", "Delete", `Delete ${name}`, "btn-delete"),
      confirm: button("confirm-delete", "Yes, delete", `Yes, delete ${name}`, "btn-delete"),
      cancel: button("cancel-delete", "Cancel", `Cancel, keep ${name}`),
    };
    const ask = h("span", { class: "confirm", role: "group", "aria-label": `Delete ${name}?`, hidden: true },
      h("span", { class: "confirm-text", "aria-hidden": "true", text: "Delete?" }),
      buttons.confirm, buttons.cancel);
    const group = h("span", { class: "btn-group" }, buttons.toggle, buttons.remove);
    const cells = {
      name: h("th", { scope: "row", class: "name mono", title: name, text: name }),
      cron: h("td", { class: "cron" }, h("code")),
      timezone: h("td", { class: "timezone" }),
      type: h("td", { class: "type" }),
      state: h("td", { class: "state" }, h("span", { class: "badge" })),
      next: h("td", { class: "next" }),
      last: h("td", { class: "last" }),
      actions: h("td", { class: "actions" }, group, ask),
    };
    const tr = h("tr", { dataset: { schedule: name } }, ...Object.values(cells));
    const row = { schedule: null, tr, cells, buttons, ask, group, busy: false, confirming: false };

    // Busy buttons are aria-disabled, not disabled: a disabled button would drop the focus.
    const on = (b, fn) => b.addEventListener("click", () => row.busy || fn());
    on(buttons.toggle, () => {
      const enabled = !row.schedule.enabled;
      act(name, enabled ? "resume" : "pause", () => api.updateSchedule(name, { enabled }));
    });
    on(buttons.remove, () => setConfirming(row, true));
    on(buttons.cancel, () => setConfirming(row, false));
    on(buttons.confirm, () => act(name, "delete", () => api.deleteSchedule(name), { deleting: true }));
    ask.addEventListener("keydown", (e) => {
      if (e.key !== "Escape") return;
      e.stopPropagation(); // the page's Escape closes the job detail
      setConfirming(row, false);
    });
    return row;
  }

  function setConfirming(row, on) {
    row.confirming = on;
    update(row);
    (on ? row.buttons.cancel : row.buttons.remove).focus();
  }

  function setTime(cell, value) {
    if (cell.dataset.value === (value ?? "")) return;
    cell.dataset.value = value ?? "";
    cell.replaceChildren(timeEl(value));
  }

  function update(row) {
    const s = row.schedule;
    const { cells, buttons } = row;
    setAttr(row.tr, "data-enabled", s.enabled);
    row.tr.classList.toggle("paused", !s.enabled);
    setText(cells.cron.firstChild, s.cron);
    setText(cells.timezone, s.timezone);
    const job = s.job ?? {};
    const typeText = job.priority === "high" ? `${job.type} · high` : job.type;
    setText(cells.type, typeText);
    setAttr(cells.type, "title",
      `payload ${JSON.stringify(job.payload ?? {})}, priority ${job.priority}, max attempts ${job.max_attempts}`);
    const badge = cells.state.firstChild;
    setText(badge, s.enabled ? "enabled" : "paused");
    setAttr(badge, "class", `badge ${s.enabled ? "state-enabled" : "state-paused"}`);
    setTime(cells.next, s.next_run_at);
    setTime(cells.last, s.last_run_at);
    if (!s.enabled) setAttr(cells.next, "title", "paused: no next run");
    else cells.next.removeAttribute("title");
    setText(buttons.toggle, s.enabled ? "Pause" : "Resume");
    setAttr(buttons.toggle, "aria-label", `${s.enabled ? "Pause" : "Resume"} ${s.name}`);
    buttons.toggle.dataset.action = s.enabled ? "pause" : "resume";
    for (const b of Object.values(buttons)) setAttr(b, "aria-disabled", row.busy);
    row.group.hidden = row.confirming;
    row.ask.hidden = !row.confirming;
  }

  function render(items) {
    const names = new Set(items.map((s) => s.name));
    for (const [name, row] of rows) {
      if (!names.has(name)) removeRow(row);
    }
    let previous = null;
    for (const schedule of items) {
      let row = rows.get(schedule.name);
      if (!row) {
        row = buildRow(schedule.name);
        rows.set(schedule.name, row);
      }
      row.schedule = schedule;
      update(row);
      const at = previous ? previous.nextSibling : tbody.firstChild;
      if (row.tr !== at) tbody.insertBefore(row.tr, at); // moves only what is out of order
      previous = row.tr;
    }
    setText(count, rows.size);
    empty.hidden = rows.size > 0;
  }

  // A row leaving with the focus in it hands the focus to its neighbour (or the form).
  function removeRow(row) {
    if (row.tr.contains(document.activeElement)) {
      const next = row.tr.nextElementSibling ?? row.tr.previousElementSibling;
      (next?.querySelector("button") ?? form.elements.name).focus();
    }
    row.tr.remove();
    rows.delete(row.schedule?.name ?? row.tr.dataset.schedule);
  }

  async function act(name, verb, call, { deleting = false } = {}) {
    const row = rows.get(name);
    actionError = null;
    showErrors();
    if (row) {
      row.busy = true;
      update(row);
    }
    try {
      const changed = await call();
      if (row && changed && rows.get(name) === row) row.schedule = changed;
      if (row && deleting) removeRow(row);
    } catch (err) {
      actionError = `Could not ${verb} ${name}: ${err.detail || err.message}`;
    } finally {
      if (row && rows.get(name) === row) {
        const focused = row.tr.contains(document.activeElement);
        row.busy = false;
        row.confirming = false;
        update(row);
        if (focused && deleting) row.buttons.remove.focus(); // the confirmation it was in is gone
      }
      await refresh();
    }
  }

  // ------------------------------------------------------------------------ refresh

  function plan() {
    clearTimeout(timer);
    timer = document.visibilityState === "visible" ? setTimeout(refresh, REFRESH_MS) : null;
  }

  async function refresh() {
    const mine = ++generation; // only the latest answer is shown, and plans the next
    clearTimeout(timer);
    if (!types.size) loadTypes(); // again after a failure, or while no live worker ran any
    try {
      const data = await api.schedules();
      if (mine !== generation) return;
      loadError = null;
      render(data?.items ?? []);
    } catch (err) {
      if (mine !== generation) return;
      loadError = `Could not load schedules: ${err.detail || err.message}`;
    }
    showErrors();
    plan();
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
    else clearTimeout(timer);
  });

  // ------------------------------------------------------------------------ create form

  const form = root.querySelector("#schedule-form");
  const fields = form.elements;
  const formError = root.querySelector("#schedule-form-error");
  const result = root.querySelector("#schedule-form-result");
  const typeHint = root.querySelector("#schedule-type-hint");
  const submit = form.querySelector('button[type="submit"]');
  const types = new Map();
  const examples = new Set(["", "{}"]);
  const fieldErrors = new Map(); // control name → its error element
  let submitting = false;

  for (const name of ["name", "cron", "timezone", "type", "priority", "payload"]) {
    const control = fields[name];
    const box = h("p", {
      class: "field-error", id: `schedule-${name}-error`, dataset: { errorFor: name }, hidden: true,
    });
    control.after(box);
    const described = control.getAttribute("aria-describedby");
    control.setAttribute("aria-describedby", [box.id, described].filter(Boolean).join(" "));
    fieldErrors.set(name, box);
  }

  fields.timezone.value = browserZone();
  try {
    const zones = new Set(["UTC", ...Intl.supportedValuesOf("timeZone")]);
    const options = [...zones].map((zone) => h("option", { value: zone }));
    root.querySelector("#schedule-zones").replaceChildren(...options);
  } catch {
    // an older browser: the zone is typed, and the API says when it does not know it
  }

  let typesLoading = null;
  function loadTypes() {
    typesLoading ??= readTypes().finally(() => {
      typesLoading = null;
    });
    return typesLoading;
  }

  async function readTypes() {
    try {
      const { items } = await api.types();
      const served = items.filter((t) => t.workers.length);
      if (!served.length) {
        setText(typeHint, "No live worker runs any job type yet.");
        return;
      }
      const chosen = fields.type.value;
      types.clear();
      for (const t of served) types.set(t.name, t);
      fields.type.replaceChildren(...served.map((t) => h("option", { value: t.name, text: t.name })));
      if (types.has(chosen)) fields.type.value = chosen;
      onType();
    } catch (err) {
      setText(typeHint, `Could not load the job types: ${err.detail || err.message}`);
    }
  }

  // The type's default priority and example payload, unless the user wrote a payload.
  function onType() {
    const known = types.get(fields.type.value);
    if (!known) return;
    fields.priority.options[0].text = `type's default (${known.defaults?.priority ?? "regular"})`;
    const fieldNames = Object.keys(known.schema?.properties ?? {});
    setText(typeHint, known.description ? known.description.split("\n")[0].replaceAll("``", "")
      : fieldNames.length ? `Payload fields: ${fieldNames.join(", ")}.` : "No payload.");
    if (examples.has(fields.payload.value.trim())) {
      const example = examplePayload(known.schema);
      examples.add(example);
      fields.payload.value = example;
    }
  }
  fields.type.addEventListener("change", onType);

  /** Clear every error, then show `placed` ({control: [message]}) and `message` (form-wide). */
  function showFormErrors(placed = {}, message = null, others = []) {
    for (const [name, box] of fieldErrors) {
      const messages = placed[name] ?? [];
      setText(box, messages.join("; "));
      box.hidden = messages.length === 0;
      if (messages.length) fields[name].setAttribute("aria-invalid", "true");
      else fields[name].removeAttribute("aria-invalid");
    }
    formError.replaceChildren();
    if (message) formError.append(h("p", { text: message }));
    if (others.length) {
      formError.append(h("ul", {}, others.map((e) => h("li", {}, h("code", { text: e.field }), `: ${e.message}`))));
    }
    formError.hidden = !message && !others.length;
    const first = [...fieldErrors.keys()].find((name) => placed[name]?.length);
    if (first) fields[first].focus();
  }

  function showProblem(err) {
    const placed = {};
    const others = [];
    for (const e of err.errors ?? []) {
      const control = controlFor(e.field);
      if (control) (placed[control] ??= []).push(e.message);
      else others.push(e);
    }
    if (!err.errors?.length && err.status === 409) placed.name = [err.detail];
    const allPlaced = Object.keys(placed).length > 0 && !others.length;
    showFormErrors(placed, allPlaced ? NOT_CREATED : err.detail || err.message, others);
  }

  /** The request body, or throws {control: [message]} for what the browser can tell. */
  function readBody() {
    const problems = {};
    const name = fields.name.value.trim();
    const cron = fields.cron.value.trim();
    if (!name) problems.name = ["name: required (letters, digits, _ and -)"];
    if (!cron) problems.cron = ["cron: required, e.g. 0 3 * * * (03:00 every day)"];
    if (!fields.type.value) problems.type = ["type: choose a job type (no live worker runs one yet)"];
    let payload = {};
    const text = fields.payload.value.trim();
    if (text) {
      try {
        payload = JSON.parse(text);
      } catch (err) {
        problems.payload = [`payload: not valid JSON (${err.message})`];
      }
      if (!problems.payload && (!payload || typeof payload !== "object" || Array.isArray(payload))) {
        problems.payload = ['payload: must be a JSON object, e.g. {"seconds": 5}'];
      }
    }
    if (Object.keys(problems).length) throw problems;
    const job = { type: fields.type.value, payload };
    if (fields.priority.value) job.priority = fields.priority.value;
    const body = { name, cron, job };
    const zone = fields.timezone.value.trim();
    if (zone) body.timezone = zone;
    return body;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (submitting) return;
    setText(result, "");
    let body;
    try {
      body = readBody();
    } catch (problems) {
      showFormErrors(problems, NOT_CREATED);
      return;
    }
    showFormErrors();
    submitting = true;
    setAttr(submit, "aria-disabled", true);
    form.setAttribute("aria-busy", "true");
    try {
      const created = await api.createSchedule(body);
      const others = [...rows.values()].map((r) => r.schedule).filter((s) => s.name !== created.name);
      render([...others, created].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
      fields.name.value = "";
      setText(result, `Created ${created.name}.`);
    } catch (err) {
      showProblem(err);
    } finally {
      submitting = false;
      setAttr(submit, "aria-disabled", false);
      form.removeAttribute("aria-busy");
    }
    refresh();
  });

  refresh(); // and the types
  return { refresh };
}
