// The create form (#create-form): POST /jobs, the problem's `detail` shown in #create-error,
// the new job put in the list from the 201 response (the feed confirms it).

import { h, shortId } from "../util.js";

const DEFAULT_PAYLOADS = {
  sleep: '{"seconds": 5, "steps": 10}',
  noop: "{}",
  exec: '{"argv": ["echo", "hello"], "env": {}}',
};

export function mountCreate(form, { api, store }) {
  const errorBox = document.getElementById("create-error");
  const resultBox = document.getElementById("create-result");
  const submit = form.querySelector('button[type="submit"]');
  const fields = form.elements;
  let lastType = fields.type.value.trim();

  if (!fields.payload.value.trim()) fields.payload.value = DEFAULT_PAYLOADS[lastType] ?? "{}";

  // Swap in the new type's example payload unless the user edited the payload.
  fields.type.addEventListener("input", () => {
    const type = fields.type.value.trim();
    const current = fields.payload.value.trim();
    const untouched = !current || Object.values(DEFAULT_PAYLOADS).includes(current);
    if (untouched && DEFAULT_PAYLOADS[type] && type !== lastType) fields.payload.value = DEFAULT_PAYLOADS[type];
    lastType = type;
  });

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
