"""The browser sample app's server: examples/browser/ as it is, on a second origin, plus a
generated config.js naming the API, the browser client the page is built on (clients/js/,
built by `make client`) and the vendored QR code generator (scripts/local_api.py serves it
beside the local API).
"""

import http.server
import json
import sys
import urllib.parse

from devtools import ROOT
from devtools.docs_assets import QRCODE

EXAMPLE_DIR = ROOT / "examples" / "browser"
CLIENT_FILE = ROOT / "clients" / "js" / "dist" / "index.js"


class ExampleHandler(http.server.SimpleHTTPRequestHandler):
    """Serves examples/browser/ as it is, plus a generated config.js naming the API."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(EXAMPLE_DIR), **kwargs)

    def send_head(self):
        path = urllib.parse.urlsplit(self.path).path
        # One origin only: the one the API allows (localhost is another origin, and
        # another site for the SameSite cookie).
        if self.headers.get("Host") != self.server.host:
            self.send_response(308)
            self.send_header("Location", f"http://{self.server.host}{path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if path == "/config.js":
            return self.send_script(f"window.API_BASE = {json.dumps(self.server.api_base)};\n".encode())
        # The vendored QR code generator (scripts/docs_assets.py), for the two-factor set-up.
        if path == "/vendor/qrcode.js":
            script = QRCODE.dest / "qrcode.js"
            if not script.is_file():
                self.send_error(404, "run `make docs-assets`: the QR code generator is not vendored yet")
                return None
            return self.send_script(script.read_bytes())
        # The browser client the page is built on (clients/js/, built by `make client`).
        if path == "/vendor/jwt-auth-client.js":
            if not CLIENT_FILE.is_file():
                self.send_error(404, "run `make client`: the browser client is not built yet")
                return None
            return self.send_script(CLIENT_FILE.read_bytes())
        # The pages a mail's link opens, without their ".html".
        if path in ("/verify-email", "/reset-password"):
            self.path = path + ".html"
        return super().send_head()

    def send_script(self, body):
        """Answers with the JavaScript `body` (its head only, for HEAD)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)
        return None

    def list_directory(self, path):
        self.send_error(404)
        return None

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # The mail's links carry a token in the URL: no Referer ever names one.
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src {self.server.api_base}; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
        )
        super().end_headers()

    def log_message(self, format, *args):
        pass  # the API's own log is the one worth reading


def example_server(port, api_base):
    """The sample app's server, bound (so a busy port fails before the API starts)."""
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), ExampleHandler)
    except OSError as e:
        sys.exit(f"cannot serve the sample app on 127.0.0.1:{port}: {e}; set EXAMPLE_PORT (0: none)")
    server.daemon_threads = True
    server.host = f"127.0.0.1:{server.server_address[1]}"
    server.api_base = api_base
    return server
