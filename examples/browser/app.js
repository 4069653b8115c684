// jwt-auth sample app: a single page on its own origin that signs in against the API
// with cookie mode (see the README, "Browser clients").
//
// - The access token lives in the `access` variable below and nowhere else: not in
//   localStorage, sessionStorage or a cookie. A reload forgets it.
// - The refresh token never reaches this script: the API sets it as an HttpOnly cookie
//   (`?cookie=true`), and the browser sends it back to the API's /auth path by itself.
//   On load, the page asks for a new access token with that cookie (a silent refresh).
// - Every call sends `credentials: "include"` (so the cookie travels cross-origin) and
//   `X-Requested-With`, the header the API requires on cookie-authenticated requests: a
//   plain HTML form on another site cannot send it, which is the CSRF defence.
"use strict";

(() => {
  const API = String(window.API_BASE || "").replace(/\/+$/, "");
  let access = null; // the access token, in memory only
  let refreshing = null; // one refresh at a time: each refresh spends the cookie's token

  const $ = (id) => document.getElementById(id);

  // ---- talking to the API ----

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const error = (body && body.error) || (status ? `http_${status}` : "network_error");
      const description =
        (body && body.error_description) ||
        (status
          ? "the API answered without an error description"
          : "the API could not be reached, or it does not allow this page's origin (CORS)");
      super(`${error}: ${description}`);
      Object.assign(this, { status, error, description, retryAfter });
    }
  }

  async function call(method, path, { json, token } = {}) {
    const headers = { "X-Requested-With": "fetch" };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers["Authorization"] = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(API + path, {
        method,
        headers,
        body: json === undefined ? undefined : JSON.stringify(json),
        credentials: "include",
        cache: "no-store",
      });
    } catch (e) {
      // A TypeError: the network failed, or CORS hid the answer from this page.
      throw new ApiError(0, null, null);
    }
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      body = null;
    }
    if (!res.ok) {
      // Retry-After is readable only when the API exposes it; the body says enough anyway.
      throw new ApiError(res.status, body, res.headers.get("Retry-After"));
    }
    return body;
  }

  // A new access token from the refresh cookie; the API rotates the cookie.
  function refresh() {
    if (!refreshing) {
      refreshing = call("POST", "/auth/refresh?cookie=true")
        .then(
          (body) => {
            access = body.access_token;
            return access;
          },
          (e) => {
            if (e.status === 401) access = null; // the session is over
            throw e;
          },
        )
        .finally(() => {
          refreshing = null;
        });
    }
    return refreshing;
  }

  // Calls with the access token; an expired one is renewed once from the cookie.
  async function withAccess(method, path) {
    if (!access) await refresh();
    try {
      return await call(method, path, { token: access });
    } catch (e) {
      if (e.status !== 401) throw e;
      await refresh();
      return call(method, path, { token: access });
    }
  }

  // ---- what the page shows ----

  function setStatus(text) {
    $("status").textContent = text;
  }

  function showError(e) {
    if (!e) {
      $("error").hidden = true;
      return;
    }
    const err = e instanceof ApiError ? e : new ApiError(0, { error: "error", error_description: String(e) });
    $("error-code").textContent = err.error;
    let description = `: ${err.description}`;
    if (err.retryAfter) description += ` (retry after ${err.retryAfter} s)`;
    $("error-description").textContent = description;
    $("error-status").textContent = err.status ? `HTTP ${err.status}` : "no answer";
    $("error").hidden = false;
  }

  function formatExpiry(exp) {
    if (typeof exp !== "number") return String(exp);
    const when = new Date(exp * 1000);
    const minutes = Math.round((exp * 1000 - Date.now()) / 60000);
    const relative = minutes > 0 ? `in ${minutes} min` : "expired";
    return `${when.toLocaleString()} (${relative})`;
  }

  function showSignedIn(me) {
    $("who").textContent = me.username;
    $("me-id").textContent = me.id;
    $("me-username").textContent = me.username;
    $("me-roles").textContent = Array.isArray(me.roles) && me.roles.length ? me.roles.join(", ") : "(none)";
    $("me-session-id").textContent = me.session_id;
    $("me-expires-at").textContent = formatExpiry(me.expires_at);
    $("signed-out").hidden = true;
    $("signed-in").hidden = false;
    document.body.dataset.state = "signed-in";
  }

  function showSignedOut() {
    access = null;
    $("signed-in").hidden = true;
    $("signed-out").hidden = false;
    document.body.dataset.state = "signed-out";
  }

  async function loadMe(how) {
    const me = await withAccess("GET", "/auth/me");
    showSignedIn(me);
    setStatus(`Signed in (${how}).`);
  }

  // Runs one user action: buttons off meanwhile, errors shown, never thrown.
  async function action(busyText, work) {
    const buttons = document.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    setStatus(busyText);
    showError(null);
    try {
      await work();
    } catch (e) {
      if (!access || document.body.dataset.state !== "signed-in") showSignedOut();
      showError(e);
      setStatus(access ? "The last request failed; see the message above." : "Not signed in.");
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function credentials(form) {
    const data = new FormData(form);
    return { username: String(data.get("username")), password: String(data.get("password")) };
  }

  // ---- wiring ----

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    action("Signing in…", async () => {
      const body = await call("POST", "/auth/login?cookie=true", { json: credentials(form) });
      access = body.access_token;
      form.reset();
      await loadMe("signed in with a password");
    });
  });

  $("register-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const email = String(new FormData(form).get("email") || "").trim();
    action("Creating the account…", async () => {
      const json = email ? { ...credentials(form), email } : credentials(form);
      const body = await call("POST", "/auth/register?cookie=true", { json });
      access = body.access_token;
      form.reset();
      await loadMe("account created");
    });
  });

  // The answer is the same whether or not an account has that verified address.
  $("forgot-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const email = String(new FormData(form).get("email"));
    action("Asking for a reset link…", async () => {
      await call("POST", "/auth/password/forgot", { json: { email } });
      form.reset();
      showSignedOut();
      setStatus("If an account has that verified address, a reset link is on its way.");
    });
  });

  $("me-button").addEventListener("click", () => action("Calling /auth/me…", () => loadMe("just checked")));

  $("refresh-button").addEventListener("click", () =>
    action("Refreshing the access token…", async () => {
      await refresh();
      await loadMe("access token refreshed from the cookie");
    }),
  );

  $("logout-button").addEventListener("click", () =>
    action("Signing out…", async () => {
      try {
        await withAccess("POST", "/auth/logout?cookie=true");
      } catch (e) {
        // A session that has already ended (401) is as good as signed out.
        if (e.status !== 401) throw e;
      }
      showSignedOut();
      setStatus("Signed out: the session is revoked and the cookie cleared.");
    }),
  );

  async function start() {
    $("api-base").textContent = API || "(not configured)";
    if (!API) {
      showSignedOut();
      showError(new ApiError(0, { error: "not_configured", error_description: "config.js does not set window.API_BASE" }));
      setStatus("Not configured.");
      return;
    }
    setStatus("Looking for a session (silent refresh from the cookie)…");
    try {
      await refresh();
    } catch (e) {
      showSignedOut();
      // 401 invalid_grant is the normal answer without a cookie; anything else is news.
      if (e.status !== 401) showError(e);
      setStatus(e.status === 401 ? "Not signed in." : "Could not check for a session.");
      return;
    }
    await action("Signed in from the cookie; calling /auth/me…", () => loadMe("session restored from the cookie"));
  }

  start();
})();
