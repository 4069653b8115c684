"""moto in server mode, with two changes that make it keep DynamoDB's promises:

- Requests are served one at a time. Real DynamoDB makes every conditional write and
  transaction atomic. moto's threaded server evaluates a condition and applies the write
  in plain Python, so two threads can interleave between the two; the project's race
  tests would then test moto, not our code. A process-wide lock restores the guarantee.
- A TransactWriteItems retried with the same ClientRequestToken within ten minutes
  answers as the first call did when that one succeeded, without applying it again (and a
  different request under a used token is refused), as DynamoDB does. moto ignores the
  token, so when an answer is slow (moto copies a whole table before every transaction,
  which grows with what the tests wrote) and the SDK retries the attempt, the retry would
  meet its own first attempt's writes and be refused.

Usage: moto_dynamodb.py --port N
"""

import argparse
import hashlib
import io
import json
import signal
import sys
import threading
import time

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

TOKEN_LIFETIME_S = 600
TRANSACT_WRITE = "DynamoDB_20120810.TransactWriteItems"


class Serialized:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        # ClientRequestToken -> (when, digest of the request, status, headers, body)
        self.answered = {}

    def __call__(self, environ, start_response):
        with self.lock:
            if environ.get("HTTP_X_AMZ_TARGET") == TRANSACT_WRITE:
                return self.transact_write(environ, start_response)
            # Materialise the body inside the lock: the backend does its work lazily.
            return list(self.app(environ, start_response))

    def transact_write(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            request = json.loads(body)
            token = request.pop("ClientRequestToken", None)
        except (ValueError, AttributeError):
            token = None
        if not token:
            return list(self.app(environ, start_response))
        now = time.monotonic()
        self.answered = {t: a for t, a in self.answered.items() if now - a[0] < TOKEN_LIFETIME_S}
        digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).digest()
        if token in self.answered:
            _, seen, status, headers, answer = self.answered[token]
            if seen != digest:
                mismatch = json.dumps({
                    "__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                    "message": "The request uses the same client token as a previous, but non-identical request.",
                }).encode()
                start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(mismatch)))])
                return [mismatch]
            start_response(status, headers)
            return [answer]
        answer = {}

        def capture(status, headers, exc_info=None):
            answer.update(status=status, headers=headers)
            return start_response(status, headers, exc_info)

        out = list(self.app(environ, capture))
        if answer.get("status", "").startswith("200"):
            self.answered[token] = (now, digest, answer["status"], answer["headers"], b"".join(out))
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = Serialized(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
