// Small helpers shared by the views: DOM building, time and number formatting.

export const STATUSES = ["pending", "running", "completed", "failed", "stopped"];
export const PRIORITIES = ["high", "regular"];

/** Build an element: h("td", {class: "x", dataset: {a: 1}, onclick}, child, "text"). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Set an attribute only when it changes (keeps live updates cheap). */
export function setAttr(el, name, value) {
  const text = String(value);
  if (el.getAttribute(name) !== text) el.setAttribute(name, text);
}

export function setText(el, value) {
  const text = value === null || value === undefined ? "" : String(value);
  if (el.textContent !== text) el.textContent = text;
}

// Ids are ULIDs: the first characters are the creation time, so jobs submitted together share
// them. Show the first 8 and the last 4 (random) characters, e.g. "01M841CD…7QX2".
export const shortId = (id) => {
  const s = String(id ?? "");
  return s.length > 14 ? `${s.slice(0, 8)}…${s.slice(-4)}` : s;
};

/**
 * A sortable key (microseconds since the epoch) for an RFC 3339 timestamp, keeping the
 * microseconds that Date.parse drops; null when absent or unparsable.
 */
export function tsKey(value) {
  if (!value) return null;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/i.exec(value);
  if (!m) {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : ms * 1000;
  }
  const seconds = Date.parse(m[1] + (m[3] || "Z"));
  if (Number.isNaN(seconds)) return null;
  const micros = Number((m[2] || "").padEnd(6, "0").slice(0, 6));
  return seconds * 1000 + micros;
}

const timeFmt = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

/** Local time for today, date and time otherwise; "" for null. */
export function fmtTime(value) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const today = new Date();
  return d.toDateString() === today.toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
}

/** A <time> element with a short text and the full timestamp as its title. */
export function timeEl(value) {
  if (!value) return h("span", { class: "muted", text: "—" });
  return h("time", { datetime: value, title: value, text: fmtTime(value) });
}

/** "3.2 s", "4 min", "2 h" for an age or a duration in seconds. */
export function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export function fmtPercent(value) {
  const n = clampPercent(value);
  return `${Number.isInteger(n) ? n : n.toFixed(1)}%`;
}

export function clampPercent(value) {
  const n = Number(value) || 0;
  return Math.min(100, Math.max(0, n));
}

export function fmtNumber(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  return Number(value).toLocaleString(undefined, {
    minimumFractionDigits: 0, maximumFractionDigits: digits,
  });
}

export const prettyJson = (value) => JSON.stringify(value, null, 2);

/**
 * The text PostgreSQL gives for a jsonb value (keys ordered by length then bytes, ", " and
 * ": " separators), so the client-side search matches what `q` matches on the server.
 */
export function jsonbText(value) {
  if (Array.isArray(value)) return `[${value.map(jsonbText).join(", ")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${JSON.stringify(k)}: ${jsonbText(value[k])}`).join(", ")}}`;
  }
  return JSON.stringify(value ?? null);
}

// Schedulers waiting while the tab is hidden; they run when it shows again.
const waiting = new Set();
if (typeof document !== "undefined") {
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    const runs = [...waiting];
    waiting.clear();
    for (const run of runs) run();
  });
}

/**
 * Run fn once on the next animation frame, however often it is asked for in between: every
 * DOM update of a view is batched per frame. While the tab is hidden nothing is drawn (no
 * frames come; the 250 ms fallback waits too) until it shows again.
 */
export function frameScheduler(fn) {
  let pending = false;
  const run = () => {
    if (!pending) return;
    if (typeof document !== "undefined" && document.hidden) {
      waiting.add(run);
      return;
    }
    pending = false;
    waiting.delete(run);
    fn();
  };
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(run);
    setTimeout(run, 250);
  };
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
