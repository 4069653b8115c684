// The pages a mail's link opens (verify-email, reset-password): the token comes from this
// page's URL, is posted once to the API, and is taken out of the address bar and history.
"use strict";

(() => {
  const API = String(window.API_BASE || "").replace(/\/+$/, "");
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(window.location.search).get("token") || "";
  // Out of the address bar (and of anything that reads it later).
  window.history.replaceState(null, "", window.location.pathname);

  async function post(path, json) {
    const res = await fetch(API + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Requested-With": "fetch" },
      body: JSON.stringify(json),
      cache: "no-store",
    });
    const text = await res.text();
    const body = text ? JSON.parse(text) : null;
    if (!res.ok) throw Object.assign(new Error("refused"), { status: res.status, body: body || {} });
    return body;
  }

  function fail(e) {
    const body = (e && e.body) || {};
    $("error-code").textContent = body.error || "network_error";
    $("error-description").textContent = body.error_description || "the API could not be reached";
    $("error").hidden = false;
  }

  if (document.body.dataset.page === "verify-email") {
    post("/auth/email/verify", { token }).then(
      (body) => ($("status").textContent = `Your address ${body.email} is verified.`),
      (e) => {
        $("status").textContent = "This link does not work (any more).";
        fail(e);
      },
    );
  }

  if (document.body.dataset.page === "reset-password") {
    $("reset-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const form = ev.currentTarget;
      const newPassword = String(new FormData(form).get("new_password"));
      $("error").hidden = true;
      post("/auth/password/reset", { token, new_password: newPassword }).then(
        () => {
          form.hidden = true;
          $("status").textContent = "Your password is changed, and every session is signed out. Sign in with it.";
        },
        (e) => {
          $("status").textContent = "The password was not changed.";
          fail(e);
        },
      );
    });
  }
})();
