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
  let mfaToken = null; // a two-step sign-in's token (the password was right), in memory only

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
      Object.assign(this, { status, error, description, retryAfter, body });
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
  async function withAccess(method, path, json) {
    if (!access) await refresh();
    try {
      return await call(method, path, { token: access, json });
    } catch (e) {
      // A 401 of the access token (not of a wrong password on an account route).
      if (e.status !== 401 || e.error !== "invalid_token") throw e;
      await refresh();
      return call(method, path, { token: access, json });
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
    $("me-amr").textContent = Array.isArray(me.amr) ? me.amr.join(", ") : "";
    $("signed-out").hidden = true;
    $("signed-in").hidden = false;
    document.body.dataset.state = "signed-in";
  }

  function showSignedOut() {
    access = null;
    showSecondStep(false);
    $("signed-in").hidden = true;
    $("signed-out").hidden = false;
    document.body.dataset.state = "signed-out";
  }

  // The two-step sign-in's form, instead of the password's (or back).
  function showSecondStep(shown) {
    if (!shown) mfaToken = null;
    $("mfa-login-form").hidden = !shown;
    $("login-form").hidden = shown;
    document.body.dataset.step = shown ? "code" : "";
    if (shown) $("mfa-login-form").elements.code.focus();
  }

  // The otpauth:// URI as a QR code: squares drawn here (qrcode.js computes the modules),
  // nothing sent anywhere.
  function drawQr(uri) {
    const box = $("mfa-qr");
    box.replaceChildren();
    if (typeof window.qrcode !== "function") {
      box.textContent = "(no QR code: run `make docs-assets`; type the key instead)";
      return;
    }
    const qr = window.qrcode(0, "M");
    qr.addData(uri);
    qr.make();
    const n = qr.getModuleCount();
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `-4 -4 ${n + 8} ${n + 8}`);
    svg.setAttribute("shape-rendering", "crispEdges");
    for (let r = 0; r < n; r += 1) {
      for (let c = 0; c < n; c += 1) {
        if (!qr.isDark(r, c)) continue;
        const cell = document.createElementNS(ns, "rect");
        cell.setAttribute("x", c);
        cell.setAttribute("y", r);
        cell.setAttribute("width", 1);
        cell.setAttribute("height", 1);
        svg.appendChild(cell);
      }
    }
    box.appendChild(svg);
  }

  function showRecoveryCodes(codes) {
    const list = $("mfa-recovery-codes");
    list.replaceChildren(
      ...codes.map((code) => {
        const item = document.createElement("li");
        item.textContent = code;
        return item;
      }),
    );
    $("mfa-recovery").hidden = false;
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
      // A wrong code keeps the two-step form (its token survives a few); else, signed out.
      const onCodeForm = mfaToken && document.body.dataset.step === "code";
      if (!onCodeForm && (!access || document.body.dataset.state !== "signed-in")) showSignedOut();
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
      let body;
      try {
        body = await call("POST", "/auth/login?cookie=true", { json: credentials(form) });
      } catch (e) {
        if (e.error !== "mfa_required") throw e;
        // The password was right; the second step takes this token and a code.
        mfaToken = e.body.mfa_token;
        form.reset();
        showSecondStep(true);
        setStatus("Password accepted; enter your code.");
        return;
      }
      access = body.access_token;
      form.reset();
      await loadMe("signed in with a password");
    });
  });

  $("mfa-login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const code = String(new FormData(form).get("code")).trim();
    action("Checking the code…", async () => {
      // Six digits are the app's; anything else is a recovery code.
      const json = /^[0-9]{6}$/.test(code) ? { mfa_token: mfaToken, code } : { mfa_token: mfaToken, recovery_code: code };
      try {
        const body = await call("POST", "/auth/login/mfa?cookie=true", { json });
        access = body.access_token;
      } catch (e) {
        form.reset();
        throw e;
      }
      form.reset();
      showSecondStep(false);
      await loadMe("signed in with a password and a second factor");
    });
  });

  $("mfa-login-cancel").addEventListener("click", () => {
    showSecondStep(false);
    setStatus("Not signed in.");
  });

  $("mfa-setup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const password = String(new FormData(form).get("password"));
    action("Setting up two-factor authentication…", async () => {
      const body = await withAccess("POST", "/auth/mfa/totp/setup", { password });
      form.reset();
      $("mfa-secret").textContent = body.secret;
      drawQr(body.otpauth_uri);
      $("mfa-recovery").hidden = true;
      $("mfa-confirm-form").hidden = false;
      setStatus("Scan the code with your app, then enter the code it shows.");
    });
  });

  $("mfa-confirm-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const code = String(new FormData(form).get("code")).trim();
    action("Turning two-factor authentication on…", async () => {
      const body = await withAccess("POST", "/auth/mfa/totp/confirm", { code });
      form.reset();
      form.hidden = true;
      $("mfa-secret").textContent = "";
      $("mfa-qr").replaceChildren();
      showRecoveryCodes(body.recovery_codes);
      setStatus("Two-factor authentication is on.");
    });
  });

  $("mfa-codes-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const code = String(new FormData(form).get("code")).trim();
    action("Making new recovery codes…", async () => {
      const body = await withAccess("POST", "/auth/mfa/recovery-codes", { code });
      form.reset();
      showRecoveryCodes(body.recovery_codes);
      setStatus("New recovery codes; the old ones no longer work.");
    });
  });

  $("mfa-disable-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const data = new FormData(form);
    const json = { password: String(data.get("password")), code: String(data.get("code")).trim() };
    action("Turning two-factor authentication off…", async () => {
      await withAccess("DELETE", "/auth/mfa/totp", json);
      form.reset();
      $("mfa-recovery").hidden = true;
      setStatus("Two-factor authentication is off.");
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
