// The create form's fields from a job type's payload schema (the JSON Schema a worker
// publishes: msgspec's or pydantic's), with no DOM: which input each top-level property gets,
// what an input shows for a value and what value it gives back, and which field a server's
// validation error names. views/create.js draws the inputs.
//
// An input's state is a string (its value) or, for a checkbox, a boolean. A field's value
// is {value}, {omit: true} (the key is left out, so the type's default applies) or {error}.

const SCALARS = new Set(["string", "number", "integer", "boolean"]);

/** A local `$ref` ("#/$defs/X", "#/definitions/X") followed once; anything else as it is. */
function resolve(schema, prop) {
  const ref = prop?.$ref;
  const match = typeof ref === "string" && /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref);
  const target = match && schema?.[match[1]]?.[match[2]];
  return target && typeof target === "object" ? { ...target, ...prop, $ref: undefined } : prop;
}

/** A scalar property (one scalar type, or an enum), and whether null is allowed too, the
 * way msgspec and pydantic write an optional one (anyOf [X, null]); null for anything else. */
function scalarType(schema, prop) {
  const branches = prop.anyOf || prop.oneOf;
  if (Array.isArray(branches)) {
    const rest = branches.filter((b) => b?.type !== "null").map((b) => resolve(schema, b));
    if (rest.length !== 1 || rest.length === branches.length) return null;
    const inner = scalarType(schema, rest[0]);
    return inner && !inner.nullable ? { ...inner, nullable: true } : null;
  }
  if (Array.isArray(prop.enum) || "const" in prop) return { ...prop, nullable: false };
  const types = [].concat(prop.type ?? []);
  const nullable = types.includes("null");
  const type = types.filter((t) => t !== "null");
  if (type.length !== 1 || !SCALARS.has(type[0])) return null;
  return { ...prop, type: type[0], nullable };
}

function isAutoTitle(title, name) {
  const squash = (s) => String(s).toLowerCase().replace(/[\s_-]+/g, "");
  return squash(title) === squash(name);
}

/** The text of a select's option for an enum value. */
export function optionLabel(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** What a number's bounds and a string's length and pattern say, in words. */
function constraints(p) {
  const parts = [];
  const lowExclusive = typeof p.exclusiveMinimum === "number" || p.exclusiveMinimum === true;
  const highExclusive = typeof p.exclusiveMaximum === "number" || p.exclusiveMaximum === true;
  const low = typeof p.exclusiveMinimum === "number" ? p.exclusiveMinimum : p.minimum;
  const high = typeof p.exclusiveMaximum === "number" ? p.exclusiveMaximum : p.maximum;
  if (low !== undefined && high !== undefined && !lowExclusive && !highExclusive) {
    parts.push(`${low} to ${high}`);
  } else {
    if (low !== undefined) parts.push(lowExclusive ? `more than ${low}` : `at least ${low}`);
    if (high !== undefined) parts.push(highExclusive ? `less than ${high}` : `at most ${high}`);
  }
  if (p.type === "integer") parts.unshift("a whole number");
  if (p.minLength !== undefined && p.maxLength !== undefined) {
    parts.push(`${p.minLength} to ${p.maxLength} characters`);
  } else if (p.minLength !== undefined) parts.push(`at least ${p.minLength} characters`);
  else if (p.maxLength !== undefined) parts.push(`at most ${p.maxLength} characters`);
  if (p.pattern) parts.push(`matching ${p.pattern}`);
  if (p.format) parts.push(`format ${p.format}`);
  if (p.nullable) parts.push("empty for null");
  return parts;
}

/** The HTML bounds of a number input (an integer's exclusive bound is the next integer). */
function numberAttrs(p) {
  const attrs = { step: p.type === "integer" ? "1" : "any" };
  if (typeof p.multipleOf === "number") attrs.step = String(p.multipleOf);
  const bound = (inclusive, exclusive, flag, next) => {
    if (typeof exclusive === "number") return p.type === "integer" ? next(exclusive) : exclusive;
    if (typeof inclusive === "number") {
      return flag === true && p.type === "integer" ? next(inclusive) : inclusive;
    }
    return undefined;
  };
  const min = bound(p.minimum, p.exclusiveMinimum, p.exclusiveMinimum, (n) => Math.floor(n) + 1);
  const max = bound(p.maximum, p.exclusiveMaximum, p.exclusiveMaximum, (n) => Math.ceil(n) - 1);
  if (min !== undefined) attrs.min = String(min);
  if (max !== undefined) attrs.max = String(max);
  return attrs;
}

/**
 * One field per top-level property, in the schema's order: {name, kind (text, number,
 * integer, checkbox, select, json), required, nullable, hasDefault, default, options
 * (select), attrs (HTML attributes), help}.
 */
export function formFields(schema) {
  const required = new Set(schema?.required || []);
  return Object.entries(schema?.properties || {}).map(([name, raw]) => {
    const prop = resolve(schema, raw && typeof raw === "object" ? raw : {});
    const field = {
      name,
      kind: "json",
      required: required.has(name),
      nullable: false,
      hasDefault: "default" in prop,
      default: prop.default,
      options: null,
      attrs: {},
    };
    const scalar = scalarType(schema, prop);
    const notes = [];
    if (scalar && (Array.isArray(scalar.enum) || "const" in scalar)) {
      field.kind = "select";
      field.options = Array.isArray(scalar.enum) ? [...scalar.enum] : [scalar.const];
      if (scalar.nullable && !field.options.includes(null)) field.options.push(null);
    } else if (scalar?.type === "boolean") {
      field.kind = scalar.nullable ? "select" : "checkbox";
      if (scalar.nullable) field.options = [true, false, null];
    } else if (scalar) {
      field.kind = scalar.type === "string" ? "text" : scalar.type;
      field.nullable = scalar.nullable;
      notes.push(...constraints(scalar));
      if (scalar.type === "string") {
        if (typeof scalar.minLength === "number") field.attrs.minlength = String(scalar.minLength);
        if (typeof scalar.maxLength === "number") field.attrs.maxlength = String(scalar.maxLength);
      } else {
        field.attrs = numberAttrs(scalar);
      }
    } else {
      const type = [].concat(prop.type || []).join(" or ");
      notes.push(`JSON${type ? ` (${type})` : ""}`);
    }
    const about = [];
    if (prop.description) about.push(String(prop.description).trim());
    else if (prop.title && !isAutoTitle(prop.title, name)) about.push(String(prop.title));
    field.help = [...about, notes.join(", ")].filter(Boolean).join(". ");
    return field;
  });
}

/** Whether the fields can edit payloads of this schema at all (a bare {"type": "object"}
 * takes any keys: only the raw JSON can). */
export function fieldsCanEdit(schema) {
  const props = schema?.properties;
  const some = props && typeof props === "object" && Object.keys(props).length > 0;
  return Boolean(some || schema?.additionalProperties === false);
}

function emptyState(field) {
  return field.kind === "checkbox" ? false : "";
}

/** The state that shows `value` (undefined: the key is absent), or undefined if none can. */
export function inputState(field, value) {
  if (value === undefined) {
    const shown = field.hasDefault ? inputState(field, field.default) : undefined;
    return shown === undefined ? emptyState(field) : shown;
  }
  switch (field.kind) {
    case "checkbox":
      return typeof value === "boolean" ? value : undefined;
    case "select": {
      const i = field.options.findIndex((o) => JSON.stringify(o) === JSON.stringify(value));
      return i < 0 ? undefined : String(i);
    }
    case "number":
    case "integer":
      if (typeof value === "number" && Number.isFinite(value)) return String(value);
      return value === null && field.nullable ? "" : undefined;
    case "text":
      if (typeof value === "string") return value;
      return value === null && field.nullable ? "" : undefined;
    default:
      return JSON.stringify(value);
  }
}

/** What an input in `state` gives: {value}, {omit: true} or {error}. */
export function fieldValue(field, state) {
  switch (field.kind) {
    case "checkbox":
      if (state) return { value: true };
      return field.required || field.hasDefault ? { value: false } : { omit: true };
    case "select":
      return state === "" ? { omit: true } : { value: field.options[Number(state)] };
    case "number":
    case "integer": {
      const text = String(state).trim();
      if (text === "") return field.nullable ? { value: null } : { omit: true };
      const n = Number(text);
      return Number.isFinite(n) ? { value: n } : { error: `not a number: ${text}` };
    }
    case "text":
      if (state === "") return field.nullable ? { value: null } : { omit: true };
      return { value: state };
    default: {
      const text = String(state).trim();
      if (text === "") return { omit: true };
      try {
        return { value: JSON.parse(text) };
      } catch (err) {
        return { error: `not valid JSON (${err.message})` };
      }
    }
  }
}

function shows(field, state, value) {
  if (state === undefined) return false;
  const back = fieldValue(field, state);
  return "value" in back && JSON.stringify(back.value) === JSON.stringify(value);
}

/**
 * The states that show `payload` (absent keys: the default), and what they cannot show
 * (["steps: 1.5 …"]): a key no field has, a value its input cannot hold.
 */
export function fieldStates(fields, payload) {
  const states = new Map();
  const unshown = [];
  if (!payload || typeof payload !== "object" || Array.isArray(payload)) {
    for (const f of fields) states.set(f.name, inputState(f, undefined));
    return { states, unshown: ["the payload is not a JSON object"] };
  }
  const names = new Set(fields.map((f) => f.name));
  for (const f of fields) {
    const present = Object.hasOwn(payload, f.name);
    const state = inputState(f, present ? payload[f.name] : undefined);
    if (present && !shows(f, state, payload[f.name])) {
      unshown.push(`${f.name} is ${JSON.stringify(payload[f.name])}`);
      states.set(f.name, inputState(f, undefined));
    } else {
      states.set(f.name, state);
    }
  }
  for (const key of Object.keys(payload)) {
    if (!names.has(key)) unshown.push(`${key} is not one of its fields`);
  }
  return { states, unshown };
}

/** The payload the states give, and each field's error ([{name, message}]). */
export function payloadOf(fields, states) {
  const payload = {};
  const errors = [];
  for (const f of fields) {
    const got = fieldValue(f, states.get(f.name) ?? emptyState(f));
    if ("error" in got) errors.push({ name: f.name, message: got.error });
    else if ("value" in got) payload[f.name] = got.value;
  }
  return { payload, errors };
}

/** The example payload of a schema: what its fields give untouched (the defaults). */
export function examplePayload(schema) {
  const fields = formFields(schema);
  return JSON.stringify(payloadOf(fields, fieldStates(fields, {}).states).payload);
}

/**
 * Where a validation error points, as path segments without the "body" prefix: its `loc`
 * (["body", "payload", "seconds"]), its `field` ("payload.tags[0].x"), a JSON pointer
 * ("/payload/seconds") or a JSON path within the payload ("$.seconds").
 */
export function errorPath(error) {
  let parts;
  if (Array.isArray(error?.loc)) {
    parts = error.loc.map(String);
  } else {
    let text = String(error?.field ?? error?.path ?? error?.pointer ?? "");
    if (text.startsWith("$")) text = `payload${text.slice(1)}`;
    parts = text.startsWith("/")
      ? text.slice(1).split("/").map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
      : text.split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== "");
  }
  if (["body", "query", "header", "path"].includes(parts[0])) parts = parts.slice(1);
  return parts;
}

/**
 * The field an error belongs to: {property} for a payload field among `names` (the longest
 * that the path starts with, as a name may hold a dot), else {field} (the top-level name:
 * "payload", "max_attempts", …).
 */
export function errorTarget(error, names) {
  const parts = errorPath(error);
  if (parts[0] === "payload" && parts.length > 1) {
    const known = new Set(names);
    for (let n = parts.length - 1; n > 0; n--) {
      const name = parts.slice(1, n + 1).join(".");
      if (known.has(name)) return { property: name };
    }
  }
  return { field: parts[0] ?? "" };
}

/** An error's message without the "payload.steps: " its field's own place makes redundant. */
export function errorMessage(error) {
  const message = String(error?.message ?? error?.msg ?? "invalid");
  const prefix = typeof error?.field === "string" ? `${error.field}: ` : null;
  return prefix && message.startsWith(prefix) ? message.slice(prefix.length) : message;
}
