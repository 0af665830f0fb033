// The create form (#create-form): POST /jobs, the problem's `detail` shown in #create-error,
// the new job put in the list from the 201 response (the feed confirms it). The types come
// from GET /types (what live workers run, with each payload's JSON schema): they fill the
// type list, the hint, the placeholders of what a submission may leave to the type's
// defaults, and the payload's fields (#payload-fields, built by schemaform.js). The raw JSON
// (textarea[name=payload]) always holds the payload the fields give; "Raw JSON" edits it
// instead, for what the fields cannot show. A 422's errors are shown at their fields.

import {
  errorMessage, errorTarget, examplePayload, fieldStates, fieldsCanEdit, fieldValue, formFields,
  optionLabel, payloadOf,
} from "../schemaform.js";
import { h, shortId } from "../util.js";

function describeFields(schema) {
  const required = new Set(schema?.required || []);
  return Object.entries(schema?.properties || {}).map(([name, prop]) => {
    const type = [].concat(prop?.type || prop?.anyOf?.map((a) => a.type) || "any").join(" or ");
    return `${name}${required.has(name) ? "" : "?"}: ${type}`;
  }).join(", ");
}

/** The inputs of a type's payload fields, in #payload-fields. */
function payloadInputs(box) {
  let specs = [];
  const inputs = new Map();

  function input(spec, id, state) {
    const common = { id, name: `payload.${spec.name}`, required: spec.required && spec.kind !== "checkbox" };
    if (spec.kind === "checkbox") {
      const el = h("input", { ...common, type: "checkbox" });
      el.checked = state === true;
      return el;
    }
    let el;
    if (spec.kind === "select") {
      const blank = !spec.hasDefault || state === "";
      el = h("select", common,
        blank ? h("option", { value: "", text: spec.required ? "choose…" : "—" }) : null,
        spec.options.map((o, i) => h("option", { value: String(i), text: optionLabel(o) })));
    } else if (spec.kind === "json") {
      el = h("textarea", { ...common, rows: 2, spellcheck: "false", class: "mono" });
    } else if (spec.kind === "text") {
      el = h("input", { ...common, ...spec.attrs, type: "text", autocomplete: "off", spellcheck: "false" });
    } else {
      el = h("input", {
        ...common, ...spec.attrs, type: "number",
        inputmode: spec.kind === "integer" ? "numeric" : "decimal",
      });
    }
    el.value = state;
    return el;
  }

  function field(spec, i, state) {
    const id = `pf-${i}`;
    const el = input(spec, id, state);
    const help = spec.help ? h("small", { id: `${id}-help`, class: "pf-help", text: spec.help }) : null;
    const error = h("small", { id: `${id}-error`, class: "pf-error", hidden: true });
    if (help) el.setAttribute("aria-describedby", help.id);
    inputs.set(spec.name, { el, help, error, spec });
    const label = h("label", { for: id },
      h("span", { class: "pf-name", text: spec.name }),
      spec.required ? h("span", { class: "pf-req", "aria-hidden": "true", title: "required", text: "*" }) : null);
    const kind = spec.kind === "checkbox" ? "pf pf-check" : "pf";
    return h("div", { class: kind, dataset: { field: spec.name, kind: spec.kind } },
      spec.kind === "checkbox" ? [el, label] : [label, el], help, error);
  }

  return {
    get names() {
      return specs.map((s) => s.name);
    },
    show(newSpecs, states) {
      specs = newSpecs;
      inputs.clear();
      const rows = specs.map((s, i) => field(s, i, states.get(s.name)));
      const required = specs.some((s) => s.required && s.kind !== "checkbox");
      box.replaceChildren(...(rows.length ? rows : [h("p", { class: "muted small", text: "No payload." })]));
      if (required) box.append(h("p", { class: "pf-help", "aria-hidden": "true", text: "* required" }));
    },
    /** {payload, errors: [{name, message}]} from the inputs. */
    read() {
      const states = new Map();
      const bad = [];
      for (const { el, spec } of inputs.values()) {
        if (spec.kind === "checkbox") states.set(spec.name, el.checked);
        else if (el.validity?.badInput) bad.push({ name: spec.name, message: "not a number" });
        else states.set(spec.name, el.value);
      }
      const { payload, errors } = payloadOf(specs.filter((s) => states.has(s.name)), states);
      return { payload, errors: [...bad, ...errors] };
    },
    /** The value each field now gives that it can show, for carrying over to another type. */
    values() {
      const out = {};
      for (const { el, spec } of inputs.values()) {
        const got = fieldValue(spec, spec.kind === "checkbox" ? el.checked : el.value);
        if ("value" in got) out[spec.name] = got.value;
      }
      return out;
    },
    mark(name, message) {
      const at = inputs.get(name);
      if (!at) return null;
      at.error.textContent = message;
      at.error.hidden = false;
      at.el.setAttribute("aria-invalid", "true");
      at.el.setAttribute("aria-describedby", [at.help?.id, at.error.id].filter(Boolean).join(" "));
      return at.el;
    },
    unmark(el) {
      for (const at of inputs.values()) {
        if (el && at.el !== el) continue;
        at.error.hidden = true;
        at.error.textContent = "";
        at.el.removeAttribute("aria-invalid");
        if (at.help) at.el.setAttribute("aria-describedby", at.help.id);
        else at.el.removeAttribute("aria-describedby");
      }
    },
  };
}

export function mountCreate(form, { api, store }) {
  const errorBox = document.getElementById("create-error");
  const resultBox = document.getElementById("create-result");
  const hint = document.getElementById("create-hint");
  const typeList = document.getElementById("known-types");
  const submit = form.querySelector('button[type="submit"]');
  const fields = form.elements;
  const raw = fields.payload;
  const rawLabel = raw.closest("label");
  const types = new Map();
  const examples = new Set([raw.value.trim(), "{}"]);
  let lastType = null;
  let specs = null; // the current type's fields, null when only the raw JSON can edit it
  let rawEdited = false; // the raw JSON was typed in since the fields (or an example) wrote it

  const rawToggle = h("input", { type: "checkbox", id: "payload-raw" });
  const toggleRow = h("div", { class: "payload-head" },
    h("span", { id: "payload-title", class: "payload-title", text: "Payload" }),
    h("label", { class: "raw-toggle" }, rawToggle, "Raw JSON"));
  const fieldBox = h("fieldset", { id: "payload-fields", class: "payload-fields", "aria-labelledby": "payload-title" });
  const note = h("p", { id: "payload-note", class: "pf-note small", "aria-live": "polite", hidden: true });
  rawLabel.before(toggleRow, fieldBox, note);
  const inputs = payloadInputs(fieldBox);

  function setNote(text) {
    note.textContent = text || "";
    note.hidden = !text;
  }

  function layout() {
    const withFields = Boolean(specs) && !rawToggle.checked;
    toggleRow.hidden = !specs;
    fieldBox.hidden = !withFields;
    rawLabel.hidden = withFields;
  }

  const usingFields = () => Boolean(specs) && !rawToggle.checked;

  /** The raw JSON from the fields; false (and the fields marked) when a field is wrong. */
  function syncRaw({ mark = false } = {}) {
    const { payload, errors } = inputs.read();
    if (errors.length) {
      if (mark) for (const e of errors) inputs.mark(e.name, e.message);
      return false;
    }
    raw.value = JSON.stringify(payload);
    rawEdited = false;
    return true;
  }

  /**
   * Show the raw JSON's payload in the fields; when they cannot show all of it (`strict`,
   * the user wrote it), stay on the raw JSON and say why. Lenient: what the fields cannot
   * show is dropped (the payload came from another type's fields).
   */
  function showInFields(strict) {
    let payload = {};
    const text = raw.value.trim();
    try {
      payload = text ? JSON.parse(text) : {};
    } catch (err) {
      if (strict) return stayRaw(`the raw JSON is not valid JSON (${err.message})`);
    }
    const { states, unshown } = fieldStates(specs, payload);
    if (strict && unshown.length) return stayRaw(unshown.join("; "));
    inputs.show(specs, states);
    syncRaw();
    setNote("");
    return true;
  }

  function stayRaw(why) {
    rawToggle.checked = true;
    setNote(`The fields cannot show this payload (${why}): edit it as raw JSON.`);
    return false;
  }

  function showType(type) {
    const known = types.get(type);
    if (!known) {
      hint.textContent = types.size && type ? `No live worker runs ${type}.` : "";
      return;
    }
    const about = known.description ? `${known.description.split("\n")[0]} ` : "";
    const list = describeFields(known.schema);
    hint.textContent = `${about}${list ? `Payload: ${list}.` : "No payload."}`;
    fields.max_attempts.placeholder = String(known.defaults?.max_attempts ?? 1);
    if (fields.timeout_s) fields.timeout_s.placeholder = known.defaults?.timeout_s ? String(known.defaults.timeout_s) : "none";
  }

  // A new type: its example payload unless the user edited the payload, and its fields.
  function onType() {
    const type = fields.type.value.trim();
    if (type === lastType) return;
    const known = types.get(type);
    const carried = usingFields() ? inputs.values() : null;
    lastType = type;
    specs = known && fieldsCanEdit(known.schema) ? formFields(known.schema) : null;
    if (known) {
      const current = raw.value.trim();
      const example = examplePayload(known.schema);
      examples.add(example);
      if (!current || examples.has(current)) {
        raw.value = example;
        rawEdited = false;
      } else if (carried && specs) {
        raw.value = JSON.stringify(carried); // same-named fields keep their values
        rawEdited = false;
      }
    }
    if (specs && !rawToggle.checked) {
      if (document.activeElement === raw) rawToggle.checked = true; // being typed in: keep it
      else showInFields(rawEdited);
    }
    layout();
    showType(type);
  }
  fields.type.addEventListener("input", onType);

  rawToggle.addEventListener("change", () => {
    if (rawToggle.checked) {
      if (specs && !syncRaw({ mark: true })) {
        rawToggle.checked = false;
        setNote("Fix the marked fields first: the raw JSON is made from them.");
      } else setNote("");
    } else if (specs) {
      showInFields(true);
    }
    layout();
  });
  raw.addEventListener("input", () => {
    rawEdited = true;
  });
  fieldBox.addEventListener("input", (e) => {
    inputs.unmark(e.target);
    syncRaw();
  });
  fieldBox.addEventListener("change", () => syncRaw());

  api.types().then(({ items }) => {
    for (const t of items) if (t.workers.length) types.set(t.name, t);
    typeList.replaceChildren(...[...types.keys()].map((name) => h("option", { value: name })));
    lastType = null; // the type typed while they loaded gets its fields now
    onType();
  }).catch(() => {}); // the list stays empty; the API still names the types it takes
  layout();

  /** Show a problem: `detail` in #create-error, each error at its field when it has one. */
  function showError(message, errors = null) {
    errorBox.replaceChildren();
    inputs.unmark(null);
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    if (!message) {
      errorBox.hidden = true;
      return null;
    }
    errorBox.append(h("p", { text: message }));
    const elsewhere = [];
    let first = null;
    for (const e of errors || []) {
      const target = errorTarget(e, usingFields() ? inputs.names : []);
      const at = target.property ? inputs.mark(target.property, errorMessage(e)) : null;
      if (at) {
        first ??= at;
        continue;
      }
      elsewhere.push(e);
      fields[target.field]?.setAttribute?.("aria-invalid", "true");
    }
    if (elsewhere.length) {
      errorBox.append(h("ul", {}, elsewhere.map((e) => h("li", {},
        h("code", { text: e.field ?? (e.loc || []).join(".") }), `: ${e.message}`))));
    }
    errorBox.hidden = false;
    return first;
  }

  /** The request body, or throws {field, message, errors} for what the browser can tell. */
  function readBody() {
    const body = { type: fields.type.value.trim(), priority: fields.priority.value || "regular" };
    if (usingFields()) {
      const { payload, errors } = inputs.read();
      if (errors.length) {
        const list = errors.map((e) => ({ field: `payload.${e.name}`, message: e.message }));
        throw { message: list.map((e) => `${e.field}: ${e.message}`).join("; "), errors: list };
      }
      raw.value = JSON.stringify(payload);
      body.payload = payload;
    } else {
      const payloadText = raw.value.trim();
      if (payloadText) {
        let payload;
        try {
          payload = JSON.parse(payloadText);
        } catch (err) {
          throw { field: "payload", message: `payload: not valid JSON (${err.message}); write an object such as {"seconds": 5}` };
        }
        if (!payload || typeof payload !== "object" || Array.isArray(payload)) {
          throw { field: "payload", message: 'payload: must be a JSON object, e.g. {"seconds": 5}' };
        }
        body.payload = payload;
      }
    }
    // Numbers go as numbers when they are numbers; anything else goes as typed, so the API
    // answers with its own message naming the field.
    const number = (text) => (text !== "" && Number.isFinite(Number(text)) ? Number(text) : text);
    const attempts = fields.max_attempts.value.trim();
    if (attempts) body.max_attempts = number(attempts);
    const timeout = fields.timeout_s?.value.trim();
    if (timeout) body.timeout_s = number(timeout);
    const runAt = fields.run_at?.value;
    if (runAt) {
      const when = new Date(runAt); // datetime-local: the browser's local time
      body.run_at = Number.isNaN(when.getTime()) ? runAt : when.toISOString();
    }
    return body;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    resultBox.replaceChildren();
    let body;
    try {
      body = readBody();
    } catch (problem) {
      const first = showError(problem.message, problem.errors);
      const at = first || fields[problem.field];
      at?.setAttribute("aria-invalid", "true");
      at?.focus();
      return;
    }
    showError(null);
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      const job = await api.submitJob(body);
      store.ingest(job);
      resultBox.append("Submitted ",
        h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "mono", title: job.id,
          text: shortId(job.id) }),
        ` (${job.type}, ${job.priority}).`);
    } catch (err) {
      showError(err.detail || err.message, err.errors)?.focus();
    } finally {
      submit.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}
