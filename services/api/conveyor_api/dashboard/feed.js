// The notifier's websocket feed: one event per text frame. Tracks the last sequence seen and
// reconnects with backoff (with jitter, after a 1013 too) and `since=<last seq>`, so no event
// is missed or seen twice. With a token it is offered as the subprotocol `bearer.<token>`
// (a browser cannot set a header on a websocket; never in the URL). A close with 4401 or 4403
// (the token refused) is not retried: onRefused(code, reason) says so.

const PLACEHOLDER = "{{NOTIFIER_URL}}";
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10000;

/** The notifier URL: the page's meta tag when set, else ws(s)://<this host>:8001/ws. */
export function notifierUrl(doc = document, loc = window.location) {
  const meta = doc.querySelector('meta[name="conveyor-notifier"]');
  const configured = (meta?.getAttribute("content") || "").trim();
  if (configured && configured !== PLACEHOLDER) {
    // Relative values ("/ws") resolve against the page, with the matching ws scheme.
    const url = new URL(configured, loc.href);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    return url.toString();
  }
  const scheme = loc.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${loc.hostname}:8001/ws`;
}

export class Feed {
  /**
   * onEvent(event) for each new event in order; onStatus(state) with "connecting" | "live" |
   * "reconnecting"; onOpen({resumed}) on each open (resumed: reconnected with `since`).
   */
  constructor({
    url, jobId = null, token = () => null, onEvent, onStatus = () => {}, onOpen = () => {},
    onRefused = () => {},
  }) {
    this.url = url;
    this.token = token;
    this.onRefused = onRefused;
    this.jobId = jobId;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onOpen = onOpen;
    this.lastSeq = null;
    this.ws = null;
    this.stopped = true;
    this.retries = 0;
    this.timer = null;
    this.state = "idle";
    this.paused = false;
    let resolveOpened;
    this.opened = new Promise((resolve) => { resolveOpened = resolve; });
    this._resolveOpened = resolveOpened;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this._connect();
  }

  /** Close the socket but keep the place: resume() goes on from the last seq (`since`). */
  pause() {
    if (this.stopped) return;
    this.stop();
    this.paused = true;
    this._setState("paused");
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    this.retries = 0;
    this.start();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "bye");
    this.ws = null;
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onStatus(state);
  }

  _connect() {
    const url = new URL(this.url);
    const resumed = this.lastSeq !== null;
    if (resumed) url.searchParams.set("since", String(this.lastSeq));
    if (this.jobId) url.searchParams.set("job_id", this.jobId);
    this._setState(this.retries === 0 && !resumed ? "connecting" : "reconnecting");
    let ws;
    const secret = this.token();
    try {
      ws = secret ? new WebSocket(url.toString(), [`bearer.${secret}`]) : new WebSocket(url.toString());
    } catch (err) {
      console.warn("conveyor feed: cannot open", url.toString(), err);
      this._schedule();
      return;
    }
    this.ws = ws;
    let openedAt = 0;
    ws.onopen = () => {
      openedAt = Date.now();
      this._setState("live");
      this._resolveOpened();
      this.onOpen({ resumed });
    };
    ws.onmessage = (message) => this._receive(message.data);
    ws.onclose = (close) => {
      if (this.ws !== ws) return;
      this.ws = null;
      // A connection that stayed up a while starts the backoff afresh.
      if (openedAt && Date.now() - openedAt > 5000) this.retries = 0;
      if (close.code === 4401 || close.code === 4403) {
        this.stopped = true; // the same token would be refused again
        this._setState("refused");
        this.onRefused(close.code, close.reason);
        return;
      }
      if (!this.stopped) this._schedule();
    };
    ws.onerror = () => {}; // a close follows; it decides what to do
  }

  _schedule() {
    this._setState("reconnecting");
    // Every close, 1013 (try again later: too slow, or the notifier is full) included, waits
    // 0.5 s doubling up to 10 s, half of it random, so many pages refused at once do not
    // come back at once. A connection that stayed up a while starts afresh (see onclose):
    // a client dropped for being slow comes back within 0.5 s.
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.retries);
    const delay = base / 2 + Math.random() * (base / 2);
    this.retries += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._connect(), delay);
  }

  _receive(text) {
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      console.warn("conveyor feed: ignoring a frame that is not JSON");
      return;
    }
    for (const event of Array.isArray(parsed) ? parsed : [parsed]) {
      if (!event || typeof event.seq !== "number") continue;
      if (this.lastSeq !== null && event.seq <= this.lastSeq) continue;
      this.lastSeq = event.seq;
      try {
        this.onEvent(event);
      } catch (err) {
        console.error("conveyor feed: handler failed for event", event, err);
      }
    }
  }
}
