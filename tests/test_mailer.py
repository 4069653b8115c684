"""The mailer binary under AWS's Runtime Interface Emulator, sending through moto's Amazon
SES (API v2) what the outbox holds (CONTRACT.md Part 3, "Mail delivery"): a stream batch or
the schedule starts it, it sends everything queued and forgets it; with SES down the
invocation fails (the stream retries it, the sweep comes back), the mail stays queued, and
it is sent once SES is back: delayed, never lost.
"""

import json
import os
import re
import time
import urllib.request
import uuid

import boto3
import pytest
from devtools import moto
from devtools.net import free_port
from test_lambda_rie import Function

SENDER = "no-reply@mail.rie.test"
APP_URL = "https://app.rie.test"


# A moto server of this module's own (DynamoDB and SES): the tests read what SES sent from
# its model dump (/moto-api/data.json), which on the suite's shared server holds every
# other module's items too and took longer than the tests wait. Its tables are the
# template's, made by the project's script.
OWN = {}


@pytest.fixture(scope="module", autouse=True)
def own_moto():
    env = dict(os.environ)
    moto.LOG_DIR.mkdir(exist_ok=True)
    log = open(moto.LOG_DIR / "moto-mailer.log", "w")
    proc, url = moto.start_moto(env, log)
    OWN.update(endpoint=url, tables=moto.create_tables(url, env))
    yield
    moto.stop(proc)
    log.close()


def endpoint():
    return OWN["endpoint"]


def table(variable):
    return OWN["tables"][variable]


@pytest.fixture(scope="module")
def sender():
    # moto's SES sends only from a verified identity, as SES does.
    boto3.client("ses", endpoint_url=endpoint()).verify_email_identity(EmailAddress=SENDER)
    return SENDER


def queue(kind="verify_email", token=None):
    """An outbox item as a request writes it; returns its id and the recipient."""
    mail_id, to = str(uuid.uuid4()), f"{uuid.uuid4().hex[:10]}@example.com"
    now_ms = int(time.time() * 1000)
    item = {
        "id": {"S": mail_id},
        "to": {"S": to},
        "kind": {"S": kind},
        "username": {"S": "rie-user"},
        "email": {"S": to},
        "queued_at_ms": {"N": str(now_ms)},
        "expires_at": {"N": str(now_ms // 1000 + 3600)},
    }
    if token:
        item["token"] = {"S": token}
    boto3.client("dynamodb", endpoint_url=endpoint()).put_item(TableName=table("OUTBOX_TABLE"), Item=item)
    return mail_id, to


def queued(mail_id):
    got = boto3.client("dynamodb", endpoint_url=endpoint()).get_item(
        TableName=table("OUTBOX_TABLE"), Key={"id": {"S": mail_id}}, ConsistentRead=True
    )
    return "Item" in got


def sent_to(to):
    """The messages moto's SES accepted for `to` (its model data)."""
    with urllib.request.urlopen(f"{endpoint()}/moto-api/data.json", timeout=10) as res:
        data = json.loads(res.read())
    messages = [m for m in data.get("ses", {}).get("Message", [])]
    return [m for m in messages if to in json.dumps(m.get("destinations", m.get("destination", "")))]


def mailer(ses_endpoint, sender):
    return Function(
        "mailer",
        {
            "METRICS_NAMESPACE": "JwtAuthMailTest",
            "METRICS_SERVICE": "rie-stack",
            "EMAIL_FROM": sender,
            "APP_URL": APP_URL,
            "TOKENS_TABLE": table("TOKENS_TABLE"),
            "OUTBOX_TABLE": table("OUTBOX_TABLE"),
            "USERS_TABLE": table("USERS_TABLE"),
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint(),
            "AWS_ENDPOINT_URL_SESV2": ses_endpoint,
        },
    )


# A DynamoDB stream batch as Lambda delivers it: what is in it does not matter, the mailer
# sends everything queued.
STREAM_EVENT = {"Records": [{"eventName": "INSERT", "eventSource": "aws:dynamodb", "dynamodb": {"Keys": {"id": {"S": "x"}}}}]}
SCHEDULE_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_the_mailer_sends_what_is_queued_through_ses_and_forgets_it(sender):
    token = uuid.uuid4().hex
    mail_id, to = queue(token=token)
    fn = mailer(endpoint(), sender)
    try:
        res = fn.invoke(STREAM_EVENT)
    finally:
        logs = fn.stop()
    assert res.get("sent", 0) >= 1 and res.get("refused") == 0, (res, logs[-2000:])
    assert not queued(mail_id), "forgotten once sent"
    (message,) = sent_to(to)
    assert message["source"] == sender
    assert message["subject"] == "Confirm your email address"
    # moto keeps the HTML part: the link opens the application, never a Host of a request.
    assert f'href="{APP_URL}/verify-email?token={token}"' in message["body"]
    assert token not in logs, "no token in the logs"
    # One metric line for the invocation, counting what was sent.
    emf = [json.loads(line) for line in logs.splitlines() if line.startswith("{") and '"_aws"' in line]
    assert any(m.get("MailSent", 0) >= 1 for m in emf), logs[-2000:]


def test_with_ses_down_the_mail_stays_queued_and_is_sent_once_ses_is_back(sender):
    mail_id, to = queue(kind="password_changed")
    down = mailer(f"http://127.0.0.1:{free_port()}", sender)
    try:
        res = down.invoke(SCHEDULE_EVENT)
    finally:
        logs = down.stop()
    # The invocation fails (the stream's retries and the next sweep try again) ...
    assert res.get("errorMessage") == "mail delivery failed; retried", (res, logs[-2000:])
    assert queued(mail_id), "nothing lost"
    assert sent_to(to) == []
    # ... and once SES answers, the next round sends it at once (the failed round gave its
    # claim back).
    back = mailer(endpoint(), sender)
    try:
        res = back.invoke(SCHEDULE_EVENT)
    finally:
        back.stop()
    assert res.get("sent", 0) >= 1, res
    assert not queued(mail_id)
    (message,) = sent_to(to)
    assert message["subject"] == "Your password was changed"


def test_a_mail_ses_refuses_for_good_is_dropped_not_retried_forever(sender):
    # An unverified sender: SES refuses the message itself (MessageRejected).
    mail_id, to = queue(kind="password_changed")
    fn = mailer(endpoint(), "nobody@unverified.rie.test")
    try:
        res = fn.invoke(SCHEDULE_EVENT)
    finally:
        logs = fn.stop()
    assert res.get("refused", 0) >= 1, (res, logs[-2000:])
    assert not queued(mail_id)
    assert sent_to(to) == []
    assert re.search(r"refused by the mail service", logs), logs[-2000:]
    emf = [json.loads(line) for line in logs.splitlines() if line.startswith("{") and '"_aws"' in line]
    assert any(m.get("MailRefused", 0) >= 1 for m in emf), logs[-2000:]
