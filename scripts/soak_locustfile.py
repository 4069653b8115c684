"""The soak's workload (Locust, run headless by scripts/soak.py): members who register, then
log in (now and then with a wrong password), refresh (now and then twice at once with one
token), call /auth/me, list and end sessions, change their password, log out and log out
everywhere, each member from a loopback address of its own.

Every answer and every fact the invariants need (who registered with which password, which
tokens a logout ended, which refresh token was exchanged for which) is written as a JSON
line to $SOAK_EVENTS; scripts/soak.py reads them afterwards. Tokens go only to that file,
under .local/.
"""

import base64
import json
import os
import random
import time
import uuid

import gevent
from locust import HttpUser, between, events, task
from requests.adapters import HTTPAdapter

EVENTS = open(os.environ["SOAK_EVENTS"], "a", buffering=1)


def record(kind, **fields):
    EVENTS.write(json.dumps({"t": time.time(), "kind": kind, **fields}) + "\n")


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@events.request.add_listener
def on_request(request_type, name, response_time, response=None, exception=None, **_):
    status = response.status_code if response is not None else 0
    code = None
    if status >= 400:
        try:
            code = response.json().get("error")
        except ValueError:
            code = None
    record("request", name=name, method=request_type, status=status, ms=response_time, code=code)


class FromAddress(HTTPAdapter):
    """Connections from one loopback address (127.0.0.0/8 is all loopback on Linux): the
    throttle sees each member as a client of its own."""

    def __init__(self, address, **kwargs):
        self.address = address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Member(HttpUser):
    wait_time = between(0.05, 0.4)

    def on_start(self):
        self.address = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
        self.client.mount("http://", FromAddress(self.address))
        self.username = f"soak-{uuid.uuid4().hex[:12]}"
        self.password = f"soak pass {uuid.uuid4().hex}"
        self.sessions = []
        res = self.client.post("/auth/register", json={"username": self.username, "password": self.password}, name="register")
        if res.status_code == 201:
            record("registered", username=self.username, password=self.password)
            self.keep(res.json())

    def keep(self, body):
        """A pair handed out: remembered, and written down for the invariants."""
        pair = {"access": body["access_token"], "refresh": body["refresh_token"]}
        record("pair", username=self.username, access=pair["access"], refresh=pair["refresh"], sid=claims(pair["access"])["sid"])
        self.sessions.append(pair)
        return pair

    def session(self):
        if not self.sessions:
            self.login()
        return random.choice(self.sessions) if self.sessions else None

    @task(3)
    def login(self):
        wrong = random.random() < 0.15
        password = self.password + (" wrong" if wrong else "")
        name = "login (wrong password)" if wrong else "login"
        res = self.client.post("/auth/login", json={"username": self.username, "password": password}, name=name)
        record("login", username=self.username, address=self.address, wrong=wrong, status=res.status_code)
        if res.status_code == 200:
            self.keep(res.json())

    @task(4)
    def refresh(self):
        pair = self.session()
        if pair is None:
            return
        presented = pair["refresh"]
        # Now and then a client that sends its refresh twice at once (two tabs, a retry).
        times = 2 if random.random() < 0.2 else 1

        def once():
            res = self.client.post("/auth/refresh", json={"refresh_token": presented}, name="refresh")
            successor = res.json()["refresh_token"] if res.status_code == 200 else None
            record("refreshed", presented=claims(presented)["jti"], status=res.status_code,
                   successor=claims(successor)["jti"] if successor else None, username=self.username)
            return res

        answers = [g.value for g in gevent.joinall([gevent.spawn(once) for _ in range(times)])]
        if pair in self.sessions:
            self.sessions.remove(pair)
        for res in answers:
            if res is not None and res.status_code == 200:
                self.keep(res.json())
                break

    @task(5)
    def me(self):
        pair = self.session()
        if pair is not None:
            self.client.get("/auth/me", headers={"Authorization": f"Bearer {pair['access']}"}, name="me")

    @task(1)
    def sessions_list_and_end(self):
        pair = self.session()
        if pair is None:
            return
        auth = {"Authorization": f"Bearer {pair['access']}"}
        res = self.client.get("/auth/sessions", headers=auth, name="sessions")
        if res.status_code != 200:
            return
        others = [s["id"] for s in res.json()["sessions"] if not s["current"]]
        if others:
            sid = random.choice(others)
            ended = self.client.delete(f"/auth/sessions/{sid}", headers=auth, name="end session")
            if ended.status_code == 204:
                record("session_ended", username=self.username, sid=sid)
                self.sessions = [p for p in self.sessions if claims(p["access"])["sid"] != sid]

    @task(1)
    def logout(self):
        pair = self.session()
        if pair is None:
            return
        res = self.client.post("/auth/logout", headers={"Authorization": f"Bearer {pair['access']}"}, name="logout")
        if res.status_code == 204:
            record("logged_out", username=self.username, access=pair["access"], refresh=pair["refresh"])
            self.sessions.remove(pair)

    @task(1)
    def rare(self):
        # Logout everywhere and password changes: rarer than the rest.
        if random.random() < 0.3:
            self.logout_everywhere()
        elif random.random() < 0.3:
            self.change_password()

    def logout_everywhere(self):
        pair = self.session()
        if pair is None:
            return
        asked = time.time()
        res = self.client.post("/auth/logout?all=true", headers={"Authorization": f"Bearer {pair['access']}"}, name="logout all")
        if res.status_code == 204:
            record("logged_out_all", username=self.username, asked=asked)
            self.sessions = []

    def change_password(self):
        pair = self.session()
        if pair is None:
            return
        new = f"soak pass {uuid.uuid4().hex}"
        body = {"current_password": self.password, "new_password": new}
        record("password_change_asked", username=self.username, password=new)
        res = self.client.post("/auth/password", json=body, headers={"Authorization": f"Bearer {pair['access']}"}, name="password")
        if res.status_code == 200:
            self.password = new
            record("password_changed", username=self.username, password=new, asked=time.time())
            self.sessions = []
            self.keep(res.json())
