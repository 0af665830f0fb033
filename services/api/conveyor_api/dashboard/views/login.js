// Who the page is. GET /whoami answers {name, role}: 401 shows #login (an "API token"
// field), a token it accepts is kept in sessionStorage for this tab (never localStorage,
// never in the URL) and sent by api.js and feed.js; a read token's page hides every action
// (body[data-role="read"], style.css) and says "read-only". With auth off the API answers
// {"name": "anonymous", "role": "operate"} and nothing of this shows.

import { h } from "../util.js";

const KEY = "conveyor.token";
const NOTE = "conveyor.login-note"; // why the page went back to the login, shown once there
const ANONYMOUS = "anonymous";

/** The token of this tab's session, in `storage` (sessionStorage). */
export function createSession(storage) {
  let leaving = false;
  const read = () => {
    try {
      return storage.getItem(KEY);
    } catch {
      return null; // storage disabled: no session, the login asks every time
    }
  };
  const leave = () => {
    leaving = true;
    location.reload(); // no view, timer or socket outlives the token
  };
  return {
    token: read,
    signIn: (token) => storage.setItem(KEY, token),
    forget: () => storage.removeItem(KEY),
    signOut() {
      storage.removeItem(KEY);
      storage.removeItem(NOTE);
      leave();
    },
    /** A held token refused later (`who`: "the API", "the event feed"): to the login, saying so. */
    expire(who) {
      if (leaving || !read()) return;
      storage.removeItem(KEY);
      storage.setItem(NOTE, `token refused by ${who}: sign in again`);
      leave();
    },
    takeNote() {
      const note = storage.getItem(NOTE);
      storage.removeItem(NOTE);
      return note;
    },
  };
}

/**
 * Ask the API who the page is, then show the login or call onSignedIn() (once) with the
 * views shown. `bar` is #session: the principal, "read-only" and the Sign out button.
 */
export function mountLogin({ api, session, login, main, bar, onSignedIn }) {
  const form = login.querySelector("#login-form");
  const input = form.elements.token;
  const submit = form.querySelector('button[type="submit"]');
  const error = login.querySelector("#login-error");
  const principal = bar.querySelector("#principal");
  let entered = false;

  function showError(text) {
    error.textContent = text || "";
    error.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function showLogin(note) {
    document.body.dataset.auth = "login";
    main.hidden = true;
    bar.hidden = true;
    login.hidden = false;
    showError(note);
    input.focus();
  }

  function enter(me) {
    if (entered) return;
    entered = true;
    delete document.body.dataset.auth;
    login.hidden = true;
    main.hidden = false;
    const role = me?.role || "operate";
    document.body.dataset.role = role;
    if (me && me.name === ANONYMOUS) {
      session.forget(); // auth is off: a token left from before means nothing here
    } else if (me) {
      principal.replaceChildren(h("span", { class: "principal-name", text: me.name }));
      if (role === "read") principal.append(h("span", { class: "role-read", text: " · read-only" }));
      principal.title = role === "read"
        ? "This token may read and watch, not submit, stop, restart, delete or schedule."
        : "This token may read and act.";
      bar.hidden = false;
    }
    onSignedIn();
  }

  bar.querySelector("#sign-out").addEventListener("click", () => session.signOut());

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) {
      showError("Enter an API token.");
      input.focus();
      return;
    }
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    let me;
    try {
      me = await api.whoami(token);
    } catch (err) {
      showError(err.status === 401
        ? "token refused: it is not one of this API's tokens. Check it and try again."
        : `Could not sign in: ${err.detail || err.message}`);
      input.focus();
      input.select();
      return;
    } finally {
      submit.disabled = false;
      form.removeAttribute("aria-busy");
    }
    session.signIn(token);
    input.value = "";
    showError(null);
    enter(me);
  });

  input.addEventListener("input", () => showError(null));

  (async () => {
    let me = null;
    try {
      me = await api.whoami();
    } catch (err) {
      if (err.status === 401) {
        const held = session.token();
        session.forget();
        const note = session.takeNote();
        showLogin(held ? "token refused: sign in again" : note);
        return;
      }
      // No answer about tokens (the API unreachable, or one without /whoami): the page as
      // before, whose panels say what fails.
    }
    enter(me);
  })();
}
