// jwt-auth sample app: a single page on its own origin that signs in against the API
// with cookie mode, through the project's browser client (clients/js/, served here as
// vendor/jwt-auth-client.js; see docs/browsers.md). The client keeps the access token in
// memory only, lets the API keep the refresh token in an HttpOnly cookie, refreshes once
// per browser for every open tab, and tells every tab when the user signs in or out.

import { ApiError, createClient } from "./vendor/jwt-auth-client.js";

const API = String(window.API_BASE || "").replace(/\/+$/, "");
const client = createClient({ baseUrl: API || "http://api.not-configured.invalid" });
let mfaToken = null; // a two-step sign-in's token (the password was right), in memory only

const $ = (id) => document.getElementById(id);

// ---- what the page shows ----

function setStatus(text) {
  $("status").textContent = text;
}

function showError(e) {
  if (!e) {
    $("error").hidden = true;
    return;
  }
  const err = e instanceof ApiError ? e : new ApiError(0, { error: "error", error_description: String(e) }, null);
  $("error-code").textContent = err.code;
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
  const me = await client.me();
  showSignedIn(me);
  setStatus(`Signed in (${how}).`);
}

// Runs one user action: buttons off meanwhile, errors shown, never thrown.
async function action(busyText, work) {
  const buttons = document.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  document.body.dataset.busy = "true";
  setStatus(busyText);
  showError(null);
  try {
    await work();
  } catch (e) {
    // A wrong code keeps the two-step form (its token survives a few); else, signed out.
    const onCodeForm = mfaToken && document.body.dataset.step === "code";
    if (!onCodeForm && (!client.signedIn || document.body.dataset.state !== "signed-in")) showSignedOut();
    showError(e);
    setStatus(client.signedIn ? "The last request failed; see the message above." : "Not signed in.");
  } finally {
    delete document.body.dataset.busy;
    buttons.forEach((b) => (b.disabled = false));
    // Another tab signed out while this one was busy: follow it now.
    if (!client.signedIn && document.body.dataset.state === "signed-in") showSignedOut();
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
    const { username, password } = credentials(form);
    const result = await client.login(username, password);
    form.reset();
    if (result.status === "mfa-required") {
      // The password was right; the second step takes this token and a code.
      mfaToken = result.mfaToken;
      showSecondStep(true);
      setStatus("Password accepted; enter your code.");
      return;
    }
    await loadMe("signed in with a password");
  });
});

$("mfa-login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const code = String(new FormData(form).get("code")).trim();
  action("Checking the code…", async () => {
    // Six digits are the app's; anything else is a recovery code.
    const proof = /^[0-9]{6}$/.test(code) ? { code } : { recoveryCode: code };
    form.reset();
    await client.completeLogin(mfaToken, proof);
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
    const body = await client.account.mfaSetup(password);
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
    const codes = await client.account.mfaConfirm(code);
    form.reset();
    form.hidden = true;
    $("mfa-secret").textContent = "";
    $("mfa-qr").replaceChildren();
    showRecoveryCodes(codes);
    setStatus("Two-factor authentication is on.");
  });
});

$("mfa-codes-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const code = String(new FormData(form).get("code")).trim();
  action("Making new recovery codes…", async () => {
    const codes = await client.account.mfaRecoveryCodes(code);
    form.reset();
    showRecoveryCodes(codes);
    setStatus("New recovery codes; the old ones no longer work.");
  });
});

$("mfa-disable-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const data = new FormData(form);
  const [password, code] = [String(data.get("password")), String(data.get("code")).trim()];
  action("Turning two-factor authentication off…", async () => {
    await client.account.mfaDisable(password, code);
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
    const body = email ? { ...credentials(form), email } : credentials(form);
    const { signedIn } = await client.register(body);
    form.reset();
    if (!signedIn) {
      // The API wants the address verified first (RequireVerifiedEmail): no session yet.
      setStatus("Account created: open the link in the mail we sent, then sign in.");
      return;
    }
    await loadMe("account created");
  });
});

// The answer is the same whether or not an account has that verified address.
$("forgot-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const email = String(new FormData(form).get("email"));
  action("Asking for a reset link…", async () => {
    await client.email.forgotPassword({ email });
    form.reset();
    showSignedOut();
    setStatus("If an account has that verified address, a reset link is on its way.");
  });
});

$("me-button").addEventListener("click", () => action("Calling /auth/me…", () => loadMe("just checked")));

$("refresh-button").addEventListener("click", () =>
  action("Refreshing the access token…", async () => {
    await client.refresh();
    await loadMe("access token refreshed from the cookie");
  }),
);

$("logout-button").addEventListener("click", () =>
  action("Signing out…", async () => {
    // Every tab of this app signs out with this one (the client tells them).
    await client.logout();
    showSignedOut();
    setStatus("Signed out: the session is revoked and the cookie cleared.");
  }),
);

async function start() {
  $("api-base").textContent = API || "(not configured)";
  if (!API) {
    showSignedOut();
    showError(new ApiError(0, { error: "not_configured", error_description: "config.js does not set window.API_BASE" }, null));
    setStatus("Not configured.");
    return;
  }
  setStatus("Looking for a session (silent refresh from the cookie)…");
  let restored;
  try {
    restored = await client.restore();
  } catch (e) {
    showSignedOut();
    showError(e);
    setStatus("Could not check for a session.");
    return;
  }
  if (!restored) {
    // No cookie, or a session that is over: the normal first visit.
    showSignedOut();
    setStatus("Not signed in.");
    return;
  }
  await action("Signed in from the cookie; calling /auth/me…", () => loadMe("session restored from the cookie"));
}

// Another tab signed in or out (or this one's session ended): follow it. (This tab's own
// actions show their outcome themselves.)
client.onChange(({ signedIn }) => {
  if (document.body.dataset.busy) return;
  if (!signedIn && document.body.dataset.state === "signed-in") {
    showSignedOut();
    setStatus("Signed out (in this tab or another).");
  } else if (signedIn && document.body.dataset.state === "signed-out" && !document.body.dataset.step) {
    action("Signed in in another tab; calling /auth/me…", () => loadMe("signed in in another tab"));
  }
});

start();
