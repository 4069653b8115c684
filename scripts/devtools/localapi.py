"""The local API as the tests and the soak drive it: a small HTTP client (`Api`) and starting
scripts/local_api.py as `make dev` does (`start_local_api`)."""

import http.client
import json
import subprocess
import sys
import time
import urllib.parse
import uuid
import socket

from devtools import ROOT
from devtools.net import free_port


class Response:
    def __init__(self, status, headers, body, raw_headers=()):
        self.status, self.headers, self.body = status, headers, body
        # Every header as sent, repeats included (`headers` keeps one value a name).
        self.raw_headers = list(raw_headers)

    def set_cookies(self):
        """Each `Set-Cookie` by cookie name: (value, {attribute in lower case: value})."""
        cookies = {}
        for name, header in self.raw_headers:
            if name.lower() != "set-cookie":
                continue
            name_value, *attributes = [part.strip() for part in header.split(";")]
            cookie, value = name_value.split("=", 1)
            assert cookie not in cookies, f"{cookie} set twice: {self.raw_headers}"
            cookies[cookie] = (value, {a.split("=", 1)[0].lower(): (a.split("=", 1) + [""])[1] for a in attributes})
        return cookies

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class Api:
    """A client of the local API. `source` is the loopback address it connects from
    (127.0.0.0/8 is all loopback on Linux), so tests can be several clients."""

    def __init__(self, port, password, source=None):
        self.port = port
        self.password = password
        self.source = source

    def from_address(self, source):
        return Api(self.port, self.password, source)

    def call(self, method, path, *, body=None, json_body=None, form=None, headers=None, token=None):
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if isinstance(body, str):
            body = body.encode()
        source_address = (self.source, 0) if self.source else None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30, source_address=source_address)
        try:
            conn.request(method, path, body=body, headers=headers)
            res = conn.getresponse()
            raw = res.getheaders()
            return Response(res.status, {k.lower(): v for k, v in raw}, res.read(), raw)
        finally:
            conn.close()

    def register(self, username=None, password=None, **extra):
        username = username or new_name()
        body = {"username": username, "password": password or self.password, **extra}
        return self.call("POST", "/auth/register", json_body=body)

    def login(self, username, password=None):
        body = {"username": username, "password": password or self.password}
        return self.call("POST", "/auth/login", json_body=body)

    def refresh(self, refresh_token):
        return self.call("POST", "/auth/refresh", json_body={"refresh_token": refresh_token})

    def me(self, access_token):
        return self.call("GET", "/auth/me", token=access_token)

    def logout(self, access_token, query=""):
        return self.call("POST", "/auth/logout" + query, token=access_token)


def new_name():
    return f"e2e-{uuid.uuid4().hex[:12]}"



def start_local_api(env, logs, *args, example_port=0):
    """Starts scripts/local_api.py on a free port with `env`, output to the file `logs`;
    returns (port, process) once it accepts connections. `example_port`: where to serve
    the browser sample app as well (0, the default: not at all; the process is then the
    local API itself)."""
    port = free_port()
    env = dict(env)
    env.pop("PORT", None)
    # A given JWT_SECRET means HS256 (the tests that forge tokens sign with it); otherwise
    # the template's default algorithm and a key pair made for the run, as `make dev`.
    if env.get("JWT_SECRET"):
        env.setdefault("JWT_ALGORITHM", "HS256")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "local_api.py"),
            "--port",
            str(port),
            "--example-port",
            str(example_port),
            *args,
        ],
        env=env,
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            logs.seek(0)
            raise RuntimeError(f"local API exited: {logs.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return port, proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("local API did not start listening")
            time.sleep(0.05)


def stop(proc):
    """Stops a process gently, then firmly; returns its exit status."""
    proc.terminate()
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
