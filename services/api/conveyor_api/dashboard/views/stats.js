// Counts and queue depths (#stats): GET /stats every 5 s, plus a throughput sparkline of
// completions per second over the last 60 s, counted in the browser from job.completed events.

import { STATUSES, fmtNumber, setText } from "../util.js";

const REFRESH_MS = 5000;
const WINDOW_S = 60;
const SVG = "http://www.w3.org/2000/svg";
const W = 300;
const H = 64;

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** Completions per second, bucketed by the event's time (capped at now, for clock skew). */
export class Throughput {
  constructor() {
    this.buckets = new Map(); // epoch second -> completions
  }

  add(at, now = Date.now()) {
    const t = Math.min(Number.isNaN(Date.parse(at)) ? now : Date.parse(at), now);
    const second = Math.floor(t / 1000);
    if (second <= Math.floor(now / 1000) - WINDOW_S) return;
    this.buckets.set(second, (this.buckets.get(second) ?? 0) + 1);
  }

  /** The last WINDOW_S complete seconds, oldest first. */
  series(now = Date.now()) {
    const last = Math.floor(now / 1000) - 1;
    for (const second of this.buckets.keys()) {
      if (second <= last - WINDOW_S) this.buckets.delete(second);
    }
    const out = [];
    for (let s = last - WINDOW_S + 1; s <= last; s += 1) out.push(this.buckets.get(s) ?? 0);
    return out;
  }
}

export function mountStats(root, { api, store }) {
  const chart = root.querySelector("#throughput-chart");
  const rate = root.querySelector("#throughput-rate");
  const server = root.querySelector(".tp-server");
  const errorBox = root.querySelector(".panel-error");
  const throughput = new Throughput();
  let timer = null;

  store.on("event", (event) => {
    if (event.type === "job.completed") throughput.add(event.at);
  });

  function drawChart() {
    const values = throughput.series();
    const peak = Math.max(1, ...values);
    const step = W / (values.length - 1);
    const y = (v) => (H - 4 - (v / peak) * (H - 8)).toFixed(1);
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${y(v)}`);
    const total = values.reduce((a, b) => a + b, 0);
    const recent = values.slice(-5).reduce((a, b) => a + b, 0) / 5;
    chart.replaceChildren(
      svg("line", { x1: 0, x2: W, y1: H - 4, y2: H - 4, class: "axis" }),
      svg("path", { d: `M0,${H - 4} L${points.join(" L")} L${W},${H - 4} Z`, class: "area" }),
      svg("polyline", { points: points.join(" "), class: "line" }),
    );
    const title = svg("title");
    title.textContent = `${total} completions in the last ${WINDOW_S} s, peak ${peak}/s`;
    chart.prepend(title);
    chart.dataset.total = total;
    chart.dataset.peak = Math.max(...values);
    setText(rate, `${fmtNumber(recent, 1)}/s`);
    setText(root.querySelector(".tp-caption"),
      `${fmtNumber(total)} completed in the last minute (seen live) · peak ${fmtNumber(Math.max(...values))}/s`);
  }

  function render(stats) {
    const byStatus = stats.by_status ?? {};
    for (const status of STATUSES) {
      setText(root.querySelector(`[data-status="${status}"] .count`), fmtNumber(byStatus[status] ?? 0));
    }
    setText(root.querySelector('[data-status="total"] .count'), fmtNumber(stats.total ?? 0));
    for (const priority of ["high", "regular"]) {
      const row = root.querySelector(`tr[data-priority="${priority}"]`);
      const depth = stats.queue_depth?.[priority] ?? {};
      setText(row.querySelector(".pending"), fmtNumber(depth.pending ?? 0));
      setText(row.querySelector(".in-flight"), fmtNumber(depth.in_flight ?? 0));
      setText(row.querySelector(".jobs"), fmtNumber(stats.by_priority?.[priority] ?? 0));
    }
    const tp = stats.throughput ?? {};
    setText(server, `Server: ${fmtNumber(tp.per_second ?? 0, 1)}/s · `
      + `${fmtNumber(tp.completed_last_minute ?? 0)} in the last minute · `
      + `projector lag ${fmtNumber(stats.projector_lag ?? 0)}`);
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      render(await api.stats());
      errorBox.hidden = true;
    } catch (err) {
      errorBox.hidden = false;
      setText(errorBox, `Could not load stats: ${err.detail || err.message}`);
    } finally {
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  drawChart();
  setInterval(drawChart, 1000);
  refresh();
  return { refresh, throughput };
}
