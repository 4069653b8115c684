"""The browser side of cookie mode and CORS, in a real headless Chromium.

The local API is started as `make dev` starts it, with the sample app
(examples/browser/) served on a second origin, http://127.0.0.1:<example port>, which
is then the one allowed origin. Chromium is the operating system's (Debian's `chromium`
package; `make test` installs it when missing), driven by Playwright for Python with that
executable: no browser is downloaded. Set CHROMIUM to use another Chromium binary.

Each test checks something a user (or an attacker's page) would notice:
- the sample app's whole flow, and the contract's error messages on the page;
- two-factor set-up with the QR code drawn in the page, recovery codes shown once, and
  the two-step sign-in (codes computed in the test from the key the page shows);
- a reload keeps the user signed in (silent refresh from the cookie), with the access
  token in memory only;
- the refresh cookie is HttpOnly: no script sees it, not even on the API's own origin;
- a page on an origin that is not allowed cannot read any answer of the API;
- a cross-site (and a same-site, other-origin) form POST to refresh and logout changes
  nothing: the user stays signed in with the same session and the same cookie.

The signed-in page is saved as docs/browser-sample.png (the README shows it) when the flow
test passes.
"""

import http.server
import json
import os
import pathlib
import secrets
import shutil
import tempfile
import threading
import time
import types
import uuid

import pytest

from devtools import docs_assets
from devtools.net import free_port
from support import Api, start_local_api, stop
from test_api import decode, sign
from test_mfa import Authenticator

ROOT = pathlib.Path(__file__).resolve().parent.parent

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # reported by the `browser` fixture, with what to do
    sync_playwright = None

# The README's picture (docs/browser-sample.png) is rewritten only when asked
# (`UPDATE_SCREENSHOT=1 make test`), so a test run leaves the work tree clean; every run
# still makes one, in .local/.
SCREENSHOT = ROOT / ("docs" if os.environ.get("UPDATE_SCREENSHOT") == "1" else ".local") / "browser-sample.png"
PASSWORD = f"browser pass {secrets.token_urlsafe(9)}"
SECRET = secrets.token_urlsafe(48)
# Every wait is bounded: a test that cannot get an answer fails within seconds.
TIMEOUT_MS = 15_000
if sync_playwright is not None:
    expect.set_options(timeout=TIMEOUT_MS)


def chromium_executable():
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    # Debian's /usr/bin/chromium is a shell wrapper around this binary.
    if os.access("/usr/lib/chromium/chromium", os.X_OK):
        return "/usr/lib/chromium/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def name(prefix="browser"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def site():
    """The local API plus the sample app on its second origin, as `make dev` runs them,
    with the defaults (no ALLOWED_ORIGINS, COOKIE_* set: the sample app's origin, /auth,
    Strict)."""
    # The sample app's QR code generator (make test vendors it first; this is for a run of
    # this file alone).
    docs_assets.ensure(docs_assets.QRCODE.dest, package=docs_assets.QRCODE)
    env = dict(os.environ, JWT_SECRET=SECRET)
    for variable in ("ALLOWED_ORIGINS", "COOKIE_SAME_SITE", "EXAMPLE_PORT"):
        env.pop(variable, None)
    example_port = free_port()
    with tempfile.TemporaryFile() as logs:
        port, proc = start_local_api(env, logs, example_port=example_port)
        try:
            yield types.SimpleNamespace(
                api=f"http://127.0.0.1:{port}",
                app=f"http://127.0.0.1:{example_port}/",
                example_port=example_port,
                client=Api(port, PASSWORD),
            )
        finally:
            status = stop(proc)
            logs.seek(0)
            output = logs.read().decode(errors="replace")
        assert status == 0, f"the local API and the sample app's server stop cleanly on SIGTERM:\n{output}"
        assert f"Sample app: http://127.0.0.1:{example_port}/" in output, output
        assert PASSWORD not in output
        assert "eyJ" not in output, "no token in the logs"


class Pages(http.server.ThreadingHTTPServer):
    """Pages of another origin (an attacker's): http://localhost:<port> is another site
    than 127.0.0.1 (the API's), http://127.0.0.1:<port> the same site but another origin;
    neither is allowed."""

    daemon_threads = True

    def __init__(self):
        self.pages = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):
                page = self.pages.get(handler.path)
                body = (page or "not found").encode()
                handler.send_response(200 if page else 404)
                handler.send_header("Content-Type", "text/html; charset=utf-8")
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]

    def put(self, path, html):
        self.pages[path] = html
        return [f"http://localhost:{self.port}{path}", f"http://127.0.0.1:{self.port}{path}"]


@pytest.fixture(scope="module")
def other_origin():
    server = Pages()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        pytest.fail("Playwright for Python is missing: `make test` installs it into .venv (requirements-dev.txt)")
    executable = chromium_executable()
    if not executable:
        pytest.fail("Chromium is missing: `make browser` installs Debian's package (or set CHROMIUM=/path/to/chromium)")
    with sync_playwright() as p:
        # Playwright starts Chromium without its sandbox unless asked (chromium_sandbox),
        # which is what running as root (CI) needs; nothing else is changed.
        browser = p.chromium.launch(executable_path=executable, timeout=30_000)
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    """A fresh browser profile (its own cookie jar) per test."""
    context = browser.new_context(viewport={"width": 900, "height": 820}, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def open_app(context, site):
    """The sample app in a new tab, once it has settled (signed in or out)."""
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(site.app)
    # The page's CSP forbids eval, so no wait_for_function: a locator waits as well.
    expect(page.locator("body[data-state]")).to_have_count(1)
    return page


def fill(page, form, username, password=PASSWORD):
    page.locator(f"{form} input[name=username]").fill(username)
    page.locator(f"{form} input[name=password]").fill(password)
    page.locator(f"{form} button[type=submit]").click()


def register(page, username):
    fill(page, "#register-form", username)
    expect(page.locator("#who")).to_have_text(username)


def login(page, username, password=PASSWORD):
    fill(page, "#login-form", username, password)


def signed_in(page, username):
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#signed-out")).to_be_hidden()
    expect(page.locator("#who")).to_have_text(username)
    expect(page.locator("#me-username")).to_have_text(username)
    return page.locator("#me-session-id").inner_text()


def signed_out(page):
    expect(page.locator("#signed-out")).to_be_visible()
    expect(page.locator("#signed-in")).to_be_hidden()


def error_shown(page, text):
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text(text)


def refresh_cookie(context, site):
    cookies = [c for c in context.cookies([f"{site.api}/auth/refresh"]) if c["name"] == "__Host-refresh_token"]
    assert len(cookies) <= 1, cookies
    return cookies[0] if cookies else None


# ---- the page itself ----


def test_the_sample_app_is_served_on_its_own_origin_and_names_the_api(context, site):
    page = context.new_page()
    res = page.goto(site.app)
    assert res.status == 200
    assert page.title() == "jwt-auth sample app"
    expect(page.locator("#api-base")).to_have_text(site.api)
    assert page.evaluate("window.API_BASE") == site.api, "config.js, generated, names the API"
    # Scripts only from the page's origin; the page talks to the API and nowhere else.
    csp = res.headers["content-security-policy"]
    assert "script-src 'self'" in csp and f"connect-src {site.api}" in csp, csp
    # localhost would be another origin (and site): the server sends the browser to the one
    # the API allows.
    page.goto(f"http://localhost:{site.example_port}/")
    assert page.url == site.app


def test_a_first_visit_tries_a_silent_refresh_and_shows_the_sign_in_form(context, site):
    with context.expect_event("request", lambda r: "/auth/refresh" in r.url and r.method == "POST") as sent:
        page = open_app(context, site)
    refresh = sent.value
    assert refresh.method == "POST" and refresh.url == f"{site.api}/auth/refresh?cookie=true"
    assert refresh.post_data in (None, ""), "the silent refresh sends no body"
    assert refresh.headers.get("x-requested-with"), "the silent refresh sends the CSRF header"
    signed_out(page)
    # No cookie yet: the API's 401 is read (CORS) and is the normal answer, not an error.
    expect(page.locator("#status")).to_have_text("Not signed in.")
    expect(page.locator("#error")).to_be_hidden()
    assert page.errors == []


# ---- (a) the whole flow, and (f) the screenshot ----


def test_register_me_logout_login_and_the_contracts_errors(context, site):
    page = open_app(context, site)
    username = name("alice")

    with page.expect_response(lambda r: "/auth/register" in r.url) as registered:
        register(page, username)
    user = registered.value.json()["user"]
    first_session = signed_in(page, username)
    assert first_session.strip()
    # What /auth/me says is what registration said.
    expect(page.locator("#me-id")).to_have_text(user["id"])
    expect(page.locator("#me-roles")).to_have_text(", ".join(user["roles"]) or "(none)")
    expect(page.locator("#status")).to_contain_text("Signed in")

    page.locator("#logout-button").click()
    signed_out(page)
    expect(page.locator("#status")).to_contain_text("Signed out")
    # Logout cleared the cookie: a reload finds no session.
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-state", "signed-out")
    signed_out(page)
    expect(page.locator("#error")).to_be_hidden()

    fill(page, "#register-form", username)
    error_shown(page, "username_taken")
    signed_out(page)

    login(page, username, "not the password at all")
    error_shown(page, "invalid_grant")
    signed_out(page)

    login(page, username)
    second_session = signed_in(page, username)
    assert second_session != first_session, "a login starts a new session"
    expect(page.locator("#error")).to_be_hidden()
    assert page.errors == []

    # (f) What the README shows. Written next to its place, then moved there: the old
    # picture stays unless every check above passed.
    SCREENSHOT.parent.mkdir(exist_ok=True)
    partial = SCREENSHOT.with_name(".browser-sample.partial.png")
    page.reload()
    expect(page.locator("#status")).to_contain_text("restored from the cookie")
    assert signed_in(page, username) == second_session
    page.set_viewport_size({"width": 900, "height": 480})
    page.screenshot(path=str(partial), full_page=True)
    os.replace(partial, SCREENSHOT)


def test_two_factor_set_up_with_a_qr_code_recovery_codes_and_the_two_step_sign_in(context, site):
    page = open_app(context, site)
    username = name("mfa")
    register(page, username)
    signed_in(page, username)
    expect(page.locator("#me-amr")).to_have_text("pwd")
    # Set-up: the password, then the key as a QR code drawn in the page and as text.
    page.locator("#mfa-setup-form input[name=password]").fill(PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/auth/mfa/totp/setup")) as answered:
        page.locator("#mfa-setup-form button[type=submit]").click()
    enrolment = answered.value.json()
    expect(page.locator("#mfa-confirm-form")).to_be_visible()
    expect(page.locator("#mfa-secret")).to_have_text(enrolment["secret"])
    # A QR code of at least version 5 (37 modules a side) for a URI this long: dark squares.
    modules = page.locator("#mfa-qr svg rect")
    expect(modules.first).to_be_attached()
    assert modules.count() > 37 * 37 // 4
    app = Authenticator(enrolment["secret"])
    page.locator("#mfa-confirm-form input[name=code]").fill(app.next_code())
    page.locator("#mfa-confirm-form button[type=submit]").click()
    codes = page.locator("#mfa-recovery-codes li")
    expect(codes).to_have_count(10)
    recovery = codes.all_inner_texts()
    # Shown once: the key is gone from the page.
    expect(page.locator("#mfa-secret")).to_have_text("")
    expect(page.locator("#mfa-qr svg")).to_have_count(0)

    page.locator("#logout-button").click()
    signed_out(page)
    # The password is step one: the code form replaces the password form.
    login(page, username)
    expect(page.locator("#mfa-login-form")).to_be_visible()
    expect(page.locator("#login-form")).to_be_hidden()
    page.locator("#mfa-login-form input[name=code]").fill("000000")
    page.locator("#mfa-login-form button[type=submit]").click()
    error_shown(page, "invalid_grant")
    expect(page.locator("#mfa-login-form")).to_be_visible()
    page.locator("#mfa-login-form input[name=code]").fill(app.next_code())
    page.locator("#mfa-login-form button[type=submit]").click()
    signed_in(page, username)
    expect(page.locator("#me-amr")).to_have_text("pwd, otp, mfa")
    # A reload keeps the session and what it proved.
    page.reload()
    signed_in(page, username)
    expect(page.locator("#me-amr")).to_have_text("pwd, otp, mfa")

    # A lost phone: a recovery code signs in (once).
    page.locator("#logout-button").click()
    signed_out(page)
    login(page, username)
    page.locator("#mfa-login-form input[name=code]").fill(recovery[0])
    page.locator("#mfa-login-form button[type=submit]").click()
    signed_in(page, username)

    # Turned off with the password and a recovery code: the password alone signs in again.
    page.locator("#mfa-disable-form input[name=password]").fill(PASSWORD)
    page.locator("#mfa-disable-form input[name=code]").fill(recovery[1])
    page.locator("#mfa-disable-form button[type=submit]").click()
    expect(page.locator("#status")).to_contain_text("is off")
    page.locator("#logout-button").click()
    signed_out(page)
    login(page, username)
    signed_in(page, username)
    expect(page.locator("#me-amr")).to_have_text("pwd")
    assert page.errors == []


# ---- many tabs (the browser client, clients/js/) ----


@pytest.mark.parametrize("run", range(10))
def test_three_tabs_restored_at_once_all_stay_signed_in(context, site, run):
    page = open_app(context, site)
    username = name("tabs")
    register(page, username)
    session = signed_in(page, username)
    # The browser restarts: no tab holds an access token, the cookie holds the session.
    page.close()
    refreshes = []
    context.on("response", lambda r: refreshes.append(r.status) if "/auth/refresh" in r.url else None)
    tabs = [context.new_page() for _ in range(3)]
    # Their loads overlap: each asks for the session at its start.
    for tab in tabs:
        tab.errors = []
        tab.on("pageerror", lambda e, tab=tab: tab.errors.append(str(e)))
        tab.goto(site.app, wait_until="commit")
    for tab in tabs:
        expect(tab.locator("#status")).to_contain_text("restored from the cookie")
        assert signed_in(tab, username) == session
    # One refresh for the browser: the other tabs took its token.
    assert refreshes == [200], refreshes
    # The session was not revoked as stolen: every tab still calls the API, and a reload
    # restores it once more.
    for tab in tabs:
        tab.locator("#me-button").click()
        expect(tab.locator("#status")).to_contain_text("just checked")
    tabs[0].reload()
    expect(tabs[0].locator("#status")).to_contain_text("restored from the cookie")
    assert signed_in(tabs[0], username) == session
    assert all(tab.errors == [] for tab in tabs)


def two_tabs_signed_in(context, site, prefix):
    """A user registered in one tab, and a second tab that found the session: (tab, tab, name)."""
    page = open_app(context, site)
    username = name(prefix)
    register(page, username)
    signed_in(page, username)
    other = open_app(context, site)
    signed_in(other, username)
    return page, other, username


def test_a_tab_signing_out_signs_out_the_others(context, site):
    page, other, username = two_tabs_signed_in(context, site, "tabs")
    page.locator("#logout-button").click()
    signed_out(page)
    signed_out(other)
    expect(other.locator("#status")).to_contain_text("Signed out (in this tab or another)")
    # And signing in again in one tab signs the other in.
    login(other, username)
    signed_in(other, username)
    signed_in(page, username)


def test_an_expired_access_token_is_refreshed_inside_the_call(context, site):
    page = open_app(context, site)
    username = name("expired")
    register(page, username)
    session = signed_in(page, username)
    expired = []

    def expire_once(route):
        authorization = route.request.headers.get("authorization", "")
        if expired or not authorization.startswith("Bearer "):
            return route.continue_()
        # The page's access token, as the API would see it a quarter of an hour later: the
        # same claims, expired, signed with the service's key.
        _, claims = decode(authorization.split(" ", 1)[1])
        claims.update(iat=claims["iat"] - 1200, nbf=claims["iat"] - 1200, exp=int(time.time()) - 60)
        expired.append(claims["jti"])
        route.continue_(headers={**route.request.headers, "authorization": f"Bearer {sign(claims, SECRET)}"})

    page.route(f"{site.api}/auth/me", expire_once)
    answers = []
    page.on("response", lambda r: answers.append((r.url.split("/auth/")[-1], r.status)) if "/auth/" in r.url else None)
    page.locator("#me-button").click()
    expect(page.locator("#status")).to_contain_text("just checked")
    # The API refused the expired token, the client refreshed once and asked again.
    assert answers == [("me", 401), ("refresh?cookie=true", 200), ("me", 200)], answers
    assert expired and signed_in(page, username) == session
    expect(page.locator("#error")).to_be_hidden()


def test_an_old_refresh_cookie_replayed_from_elsewhere_still_ends_the_session(context, site):
    page, other, _ = two_tabs_signed_in(context, site, "theft")
    old = refresh_cookie(context, site)["value"]
    page.locator("#refresh-button").click()
    expect(page.locator("#status")).to_contain_text("refreshed from the cookie")
    assert refresh_cookie(context, site)["value"] != old
    # A thief replays the spent cookie from another address: that is no retry.
    thief = site.client.from_address("127.0.0.77")
    res = thief.call(
        "POST", "/auth/refresh?cookie=true", headers={"Cookie": f"__Host-refresh_token={old}", "X-Requested-With": "fetch"}
    )
    assert res.status == 401, res
    # The session is over for the browser too: its next refresh fails, every tab signs out.
    page.locator("#refresh-button").click()
    signed_out(page)
    error_shown(page, "invalid_grant")
    signed_out(other)


def test_the_throttle_and_bad_input_are_shown_as_the_contract_words_them(context, site):
    username = name()
    assert site.client.register(username).status == 201
    page = open_app(context, site)
    fill(page, "#register-form", name(), "short")
    error_shown(page, "invalid_password")
    for _ in range(5):
        login(page, username, "wrong password, again")
        error_shown(page, "invalid_grant")
    login(page, username, "wrong password, again")
    error_shown(page, "too_many_attempts")
    expect(page.locator("#error-status")).to_have_text("HTTP 429")
    signed_out(page)


# ---- (b) reload, token in memory only ----


def test_a_reload_keeps_the_user_signed_in_and_the_access_token_is_in_memory_only(context, site):
    page = open_app(context, site)
    username = name()
    with page.expect_response(lambda r: "/auth/register" in r.url) as registered:
        register(page, username)
    body = registered.value.json()
    assert "refresh_token" not in body, "cookie mode: the refresh token is not in the body"
    tokens = [body["access_token"]]
    session = signed_in(page, username)

    with page.expect_response(lambda r: "/auth/refresh" in r.url) as refreshed:
        page.reload()
    assert refreshed.value.status == 200
    body = refreshed.value.json()
    assert "refresh_token" not in body
    tokens.append(body["access_token"])
    assert signed_in(page, username) == session, "the same session, renewed from the cookie"
    expect(page.locator("#status")).to_contain_text("restored from the cookie")

    # Another tab of the same browser is signed in too.
    other = open_app(context, site)
    assert signed_in(other, username) == session

    # The access tokens are nowhere a script or the next visit could find them.
    for p in (page, other):
        stored = p.evaluate(
            "JSON.stringify({local: {...localStorage}, session: {...sessionStorage}, cookie: document.cookie})"
        )
        for token in tokens:
            assert token not in stored
        assert "eyJ" not in stored, stored
    state = json.dumps(context.storage_state())
    for token in tokens:
        assert token not in state, "no access token in any cookie or web storage of the profile"
    assert page.errors == [] and other.errors == []


# ---- (c) the refresh cookie ----


def test_the_refresh_cookie_is_httponly_and_invisible_to_document_cookie(context, site):
    page = open_app(context, site)
    register(page, name())
    cookie = refresh_cookie(context, site)
    assert cookie, "the browser keeps the refresh cookie"
    assert cookie["httpOnly"] and cookie["secure"], cookie
    assert cookie["path"] == "/" and cookie["sameSite"] == "Strict", cookie
    assert cookie["domain"] == "127.0.0.1", "host-only: no Domain attribute"
    assert "refresh_token" not in page.evaluate("document.cookie")
    # Not even a page of the API's own origin, under the cookie's path, can read it.
    api_page = context.new_page()
    api_page.goto(f"{site.api}/auth/me")
    assert "refresh_token" not in api_page.evaluate("document.cookie")
    assert cookie["value"] not in api_page.evaluate("document.cookie")


def test_a_login_leaves_a_strict_httponly_known_device_cookie(context, site):
    page = open_app(context, site)
    username = name()
    register(page, username)
    page.locator("#logout-button").click()
    signed_out(page)
    login(page, username)
    signed_in(page, username)
    devices = [c for c in context.cookies([f"{site.api}/auth/login"]) if c["name"] == "__Host-device"]
    assert len(devices) == 1, context.cookies()
    device = devices[0]
    assert device["httpOnly"] and device["secure"] and device["sameSite"] == "Strict", device
    assert device["path"] == "/" and device["domain"] == "127.0.0.1", device
    assert "__Host-device" not in page.evaluate("document.cookie")


# ---- (c2) the pages a mail's link opens ----


def mail_link(site, to, page_path, count=1):
    """The newest link to `page_path` in the local mailbox's mails to `to`."""
    import re
    import time
    import urllib.request

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{site.api}/local/mail", timeout=10) as res:
            messages = [m for m in json.loads(res.read())["messages"] if to in m["to"]]
        links = [link for m in messages for link in re.findall(r"https?://\S+", m["text"]) if page_path in link]
        if len(links) >= count:
            return links[-1]
        time.sleep(0.1)
    raise AssertionError(f"no mail to {to} with a {page_path} link")


def test_a_mailed_link_verifies_the_address_and_a_forgotten_password_is_reset_in_the_browser(context, site):
    page = open_app(context, site)
    username, email = name(), f"{name()}@example.com"
    page.locator("#register-form input[name=email]").fill(email)
    register(page, username)
    # The verification mail's link opens the sample app's page, which posts the token.
    link = mail_link(site, email, "/verify-email?token=")
    assert link.startswith(site.app.rstrip("/") + "/verify-email?token="), link
    verify_page = context.new_page()
    response = verify_page.goto(link)
    assert response.headers.get("referrer-policy") == "no-referrer"
    expect(verify_page.locator("#status")).to_have_text(f"Your address {email} is verified.")
    assert "token" not in verify_page.url, "the token is out of the address bar"
    # Opened again: used up.
    again = context.new_page()
    again.goto(link)
    expect(again.locator("#error-code")).to_have_text("invalid_grant")

    # Forgot password: the form on the app, the mail, the page, the new password.
    page.locator("#logout-button").click()
    signed_out(page)
    page.locator("#forgot-form input[name=email]").fill(email)
    page.locator("#forgot-form button[type=submit]").click()
    expect(page.locator("#status")).to_contain_text("a reset link is on its way")
    reset_link = mail_link(site, email, "/reset-password?token=")
    reset_page = context.new_page()
    response = reset_page.goto(reset_link)
    assert response.headers.get("referrer-policy") == "no-referrer"
    assert "token" not in reset_page.url
    new_password = PASSWORD + " renewed"
    reset_page.locator("#reset-form input[name=new_password]").fill(new_password)
    reset_page.locator("#reset-form button[type=submit]").click()
    expect(reset_page.locator("#status")).to_contain_text("Your password is changed")
    # The new password signs in; the old one does not.
    login(page, username, PASSWORD)
    expect(page.locator("#error-code")).to_have_text("invalid_grant")
    login(page, username, new_password)
    signed_in(page, username)


# ---- (d) other origins cannot read answers ----

# Runs in a page and reports, per request, whether the page could read the answer.
# Requests that need a preflight (JSON, X-Requested-With, Authorization) and simple ones
# (a form or text body, no custom header: no preflight, the request is sent as it is).
READER = """
async ([api, username, password]) => {
  const jsonPost = (body) => ({
    method: "POST",
    headers: {"Content-Type": "application/json", "X-Requested-With": "fetch"},
    body: JSON.stringify(body),
  });
  const attempts = {
    "register (JSON)": ["/auth/register?cookie=true", jsonPost({username: username + "-r", password})],
    "register (simple)": ["/auth/register", {method: "POST", headers: {"Content-Type": "text/plain"},
                                             body: JSON.stringify({username: username + "-s", password})}],
    "login (JSON)": ["/auth/login?cookie=true", jsonPost({username, password})],
    "login (simple form)": ["/auth/login", {method: "POST",
                            body: new URLSearchParams({grant_type: "password", username, password})}],
    "refresh (cookie, CSRF header)": ["/auth/refresh?cookie=true", {method: "POST", headers: {"X-Requested-With": "fetch"}}],
    "refresh (cookie, simple)": ["/auth/refresh?cookie=true", {method: "POST"}],
    "me (no token)": ["/auth/me", {method: "GET"}],
  };
  const results = {};
  for (const [label, [path, init]] of Object.entries(attempts)) {
    try {
      const res = await fetch(api + path, {...init, credentials: "include"});
      results[label] = {readable: true, status: res.status, body: await res.text()};
    } catch (e) {
      results[label] = {readable: false, error: `${e.name}: ${e.message}`};
    }
  }
  return results;
}
"""


def test_a_page_on_an_origin_that_is_not_allowed_cannot_read_any_answer(browser, context, site, other_origin):
    # The harness can tell: from the allowed origin (in a profile of its own), every
    # answer is readable, the gateway's own 401 included.
    control = browser.new_context()
    try:
        page = open_app(control, site)
        allowed = page.evaluate(READER, [site.api, name(), PASSWORD])
    finally:
        control.close()
    unreadable = {label: r for label, r in allowed.items() if not r["readable"]}
    assert not unreadable, f"the allowed origin could not read: {unreadable}"
    assert allowed["register (JSON)"]["status"] == 201, allowed
    assert allowed["refresh (cookie, CSRF header)"]["status"] == 200, allowed
    assert allowed["refresh (cookie, simple)"]["status"] == 403, "no X-Requested-With: refused"
    assert allowed["me (no token)"]["status"] == 401, allowed

    username = name()
    assert site.client.register(username).status == 201
    # The victim is signed in in this browser: the cookie exists and, for the same-site
    # origin, is sent along.
    victim = open_app(context, site)
    victim_name = name()
    register(victim, victim_name)
    session = signed_in(victim, victim_name)
    cookie = refresh_cookie(context, site)

    urls = other_origin.put("/reader.html", "<!doctype html><title>another origin</title><p>reader</p>")
    for url in urls:
        page = context.new_page()
        page.goto(url)
        results = page.evaluate(READER, [site.api, username, PASSWORD])
        leaked = {label: r for label, r in results.items() if r["readable"]}
        assert not leaked, f"{url} read answers of the API: {leaked}"
        assert all(r["error"].startswith("TypeError") for r in results.values()), results

    # What those requests carried the cookie into changed nothing for the victim.
    assert refresh_cookie(context, site)["value"] == cookie["value"], "the cookie was not rotated or cleared"
    victim.reload()
    assert signed_in(victim, victim_name) == session


# ---- (e) cross-site form POSTs ----


def csrf_page(api):
    return f"""<!doctype html><title>win a prize</title>
<form id="refresh" method="post" action="{api}/auth/refresh?cookie=true" target="sink-refresh">
  <input name="grant_type" value="refresh_token"></form>
<form id="logout" method="post" action="{api}/auth/logout?cookie=true&amp;all=true" target="sink-logout">
  <input name="everything" value="please"></form>
<iframe name="sink-refresh"></iframe><iframe name="sink-logout"></iframe>
<script>
  document.getElementById("refresh").submit();
  document.getElementById("logout").submit();
</script>"""


def test_a_cross_site_form_post_to_refresh_and_logout_changes_nothing(context, site, other_origin):
    victim = open_app(context, site)
    username = name()
    register(victim, username)
    session = signed_in(victim, username)
    cookie = refresh_cookie(context, site)
    assert cookie

    for url in other_origin.put("/prize.html", csrf_page(site.api)):
        page = context.new_page()
        with page.expect_response(lambda r: "/auth/refresh" in r.url) as refreshed:
            with page.expect_response(lambda r: "/auth/logout" in r.url) as logged_out:
                page.goto(url)
        # localhost: another site, the Strict cookie is not sent; 127.0.0.1:<other port>:
        # the same site, the cookie is sent. Either way the CSRF check refuses first (no
        # X-Requested-With, a foreign Origin): 403, whatever the body; logout needs a Bearer
        # token a form cannot send: the authorizer's 401.
        assert refreshed.value.status == 403, (url, refreshed.value.status)
        assert logged_out.value.status == 401, (url, logged_out.value.status)
        page.close()

    assert refresh_cookie(context, site)["value"] == cookie["value"], "the cookie was not rotated or cleared"
    # The access token in the victim's page still works (no logout happened) ...
    victim.locator("#me-button").click()
    expect(victim.locator("#status")).to_contain_text("just checked")
    assert signed_in(victim, username) == session
    # ... and so does the cookie: a reload signs in again, same session.
    victim.reload()
    expect(victim.locator("#status")).to_contain_text("restored from the cookie")
    assert signed_in(victim, username) == session
    expect(victim.locator("#error")).to_be_hidden()
