// Composition root: asks the API who the page is (GET /whoami: the login when it answers
// 401), then builds the store and the feed, mounts the views, routes #/jobs/<id> to the
// detail view, and does the first load without a gap: open the feed (events are kept as they
// come), read the list, apply the newer events, live.

import { createActions, createNotifier } from "./actions.js";
import { createApi } from "./api.js";
import { Feed, notifierUrl } from "./feed.js";
import { Store, filterFromSearch } from "./store.js";
import { h } from "./util.js";
import { mountCreate } from "./views/create.js";
import { mountDeadLetters } from "./views/deadletters.js";
import { mountDetail } from "./views/detail.js";
import { mountJobs } from "./views/jobs.js";
import { createSession, mountLogin } from "./views/login.js";
import { mountSchedules } from "./views/schedules.js";
import { mountStats } from "./views/stats.js";
import { mountWorkers } from "./views/workers.js";

const FEED_LABELS = {
  connecting: "connecting", live: "live", reconnecting: "reconnecting", refused: "token refused",
  paused: "paused (tab hidden)",
};
// A tab hidden this long closes its feed; shown again, it resumes from the last seq it saw.
const HIDDEN_PAUSE_MS = 5000;
const $ = (selector) => document.querySelector(selector);

const session = createSession(window.sessionStorage);
// A token refused later (the API restarted with other tokens): back to the login, saying so.
const expire = (why) => session.expire(why);
const api = createApi("/api/v1", { token: session.token, onUnauthorized: () => expire("the API") });
const store = new Store(api, filterFromSearch(location.search));
const notify = createNotifier($("#notice"));
const actions = createActions({ api, store, notify });

// Job types offered by the type fields: the built-in ones plus every type seen in the list.
const knownTypes = new Set([...$("#known-types").options].map((o) => o.value));
const onTypeSeen = (type) => {
  if (!type || knownTypes.has(type) || knownTypes.size > 200) return;
  knownTypes.add(type);
  $("#known-types").append(h("option", { value: type }));
};

let jobs = null;
let detail = null;
let schedules = null;

function mountViews() {
  jobs = mountJobs($("#jobs-panel"), { api, store, actions, onTypeSeen });
  detail = mountDetail($("#job-detail"), { api, store, actions });
  mountCreate($("#create-form"), { api, store });
  mountWorkers($("#workers"), { api });
  schedules = mountSchedules($("#schedules"), { api });
  mountStats($("#stats"), { api, store });
  mountDeadLetters($("#dead-letters"), { api });
}

// ------------------------------------------------------------------------------ feed

const feedStatus = $("#feed-status");
let listRequested = false;
const feed = new Feed({
  url: notifierUrl(),
  token: session.token,
  onRefused: () => expire("the event feed"),
  onEvent: (event) => store.applyEvent(event),
  onStatus: (state) => {
    feedStatus.dataset.state = state;
    feedStatus.textContent = FEED_LABELS[state] ?? state;
  },
  // A fresh connection (not a resume with `since`) after the list was read may have missed
  // events in between: read the list again.
  onOpen: ({ resumed }) => {
    if (!resumed && listRequested) store.reload();
  },
});
feedStatus.title = `Event feed: ${feed.url}`;

// Updates pause while the tab is hidden: nothing is drawn (util.frameScheduler), and after
// HIDDEN_PAUSE_MS the feed closes; when the tab shows again it resumes with `since`.
let pauseTimer = null;
document.addEventListener("visibilitychange", () => {
  clearTimeout(pauseTimer);
  if (document.hidden) {
    pauseTimer = setTimeout(() => feed.pause(), window.conveyor?.hiddenPauseMs ?? HIDDEN_PAUSE_MS);
  } else {
    feed.resume();
  }
});

// ------------------------------------------------------------------------------ routes

function route() {
  if (!detail) return;
  const match = /^#\/jobs\/([^/?#]+)/.exec(location.hash);
  const id = match ? decodeURIComponent(match[1]) : null;
  if (id) detail.open(id);
  else detail.close();
  jobs.setSelected(id);
}

window.addEventListener("hashchange", route);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && detail?.currentId && !e.target.closest("input, textarea, select")) {
    location.hash = "#/";
  }
});

// ------------------------------------------------------------------------------ start

async function start() {
  feed.start();
  mountViews();
  route();
  // For debugging from the console and for tests.
  window.conveyor = { api, store, feed, jobs, detail, schedules, session, hiddenPauseMs: HIDDEN_PAUSE_MS };
  // Wait (briefly) for the feed to open so that no event falls between the list and the feed.
  await Promise.race([feed.opened, new Promise((resolve) => setTimeout(resolve, 1500))]);
  listRequested = true;
  await store.reload();
}

// Who the page is decides what it shows: the login (401), read-only, or everything.
mountLogin({
  api,
  session,
  login: $("#login"),
  main: $("main.layout"),
  bar: $("#session"),
  onSignedIn: start,
});
