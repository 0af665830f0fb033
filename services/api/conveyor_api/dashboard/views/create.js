// The create form (#create-form): POST /jobs, the problem's `detail` shown in #create-error,
// the new job put in the list from the 201 response (the feed confirms it). The types come
// from GET /types (what live workers run, with each payload's JSON schema): they fill the
// type list, the example payload, the hint naming the fields, and the placeholders of what a
// submission may leave to the type's defaults.

import { h, shortId } from "../util.js";

const PLACEHOLDER = { string: "", number: 0, integer: 0, boolean: false, array: [], object: {} };

/** An example payload from a JSON schema: each default, and a blank for a required field. */
export function examplePayload(schema) {
  const example = {};
  const required = new Set(schema?.required || []);
  for (const [name, prop] of Object.entries(schema?.properties || {})) {
    if (prop && "default" in prop) example[name] = prop.default;
    else if (required.has(name)) example[name] = PLACEHOLDER[[].concat(prop?.type)[0]] ?? null;
  }
  return JSON.stringify(example);
}

function describeFields(schema) {
  const required = new Set(schema?.required || []);
  return Object.entries(schema?.properties || {}).map(([name, prop]) => {
    const type = [].concat(prop?.type || prop?.anyOf?.map((a) => a.type) || "any").join(" or ");
    return `${name}${required.has(name) ? "" : "?"}: ${type}`;
  }).join(", ");
}

export function mountCreate(form, { api, store }) {
  const errorBox = document.getElementById("create-error");
  const resultBox = document.getElementById("create-result");
  const hint = document.getElementById("create-hint");
  const typeList = document.getElementById("known-types");
  const submit = form.querySelector('button[type="submit"]');
  const fields = form.elements;
  const types = new Map();
  const examples = new Set([fields.payload.value.trim(), "{}"]);
  let lastType = fields.type.value.trim();

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

  // Swap in the new type's example payload unless the user edited the payload.
  function onType() {
    const type = fields.type.value.trim();
    const current = fields.payload.value.trim();
    const known = types.get(type);
    if (known && type !== lastType && (!current || examples.has(current))) {
      const example = examplePayload(known.schema);
      examples.add(example);
      fields.payload.value = example;
    }
    lastType = type;
    showType(type);
  }
  fields.type.addEventListener("input", onType);

  api.types().then(({ items }) => {
    for (const t of items) if (t.workers.length) types.set(t.name, t);
    typeList.replaceChildren(...[...types.keys()].map((name) => h("option", { value: name })));
    showType(fields.type.value.trim());
  }).catch(() => {}); // the list stays empty; the API still names the types it takes

  function showError(message, errors = null) {
    errorBox.replaceChildren();
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    if (!message) {
      errorBox.hidden = true;
      return;
    }
    errorBox.append(h("p", { text: message }));
    if (errors?.length) {
      errorBox.append(h("ul", {}, errors.map((e) => h("li", {},
        h("code", { text: e.field }), `: ${e.message}`))));
      for (const e of errors) {
        const name = String(e.field || "").split(".")[0];
        if (fields[name]) fields[name].setAttribute("aria-invalid", "true");
      }
    }
    errorBox.hidden = false;
  }

  /** The request body, or throws {field, message} for what the browser can tell is wrong. */
  function readBody() {
    const body = { type: fields.type.value.trim(), priority: fields.priority.value || "regular" };
    const payloadText = fields.payload.value.trim();
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
      showError(problem.message);
      fields[problem.field]?.setAttribute("aria-invalid", "true");
      fields[problem.field]?.focus();
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
      showError(err.detail || err.message, err.errors);
    } finally {
      submit.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}
