"""A webhook receiver that verifies DSS callbacks independently, with requests-http-signature
0.1.0 (the library the original DSS signed its callbacks with), and checks the Digest header
against the body.

Usage: webhook_receiver.py KEYS_JSON LOG_FILE
  KEYS_JSON  {"key id": "secret", ...}: the secret the receiver expects for each key id
  LOG_FILE   one JSON line per request: path, method, headers, body, verified, error

Listens on 127.0.0.1 on a free port and prints the port on the first line of stdout. Answers 200
to a verified request, 401 otherwise.
"""
import base64
import hashlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from requests.structures import CaseInsensitiveDict
from requests_http_signature import HTTPSignatureAuth

KEYS = json.loads(sys.argv[1])
LOG = sys.argv[2]


class Received:
    """What `HTTPSignatureAuth.verify` reads of a request."""

    def __init__(self, method, url, headers, body):
        self.method, self.url, self.headers, self.body = method, url, headers, body


def resolve_key(key_id, algorithm):
    return KEYS[key_id].encode()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.receive()

    def do_PUT(self):
        self.receive()

    def receive(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = CaseInsensitiveDict(self.headers.items())
        request = Received(self.command, "http://127.0.0.1" + self.path, headers, body)
        verified, error = False, None
        try:
            HTTPSignatureAuth.verify(request, key_resolver=resolve_key)
            expected = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
            if headers.get("Digest") != expected:
                raise ValueError("Digest does not match the body")
            verified = True
        except Exception as e:  # a failed verification is an answer, not a crash
            error = repr(e)
        line = {"path": self.path, "method": self.command, "headers": dict(headers.items()),
                "body": body.decode("utf-8", "replace"), "verified": verified, "error": error}
        with open(LOG, "a") as f:
            f.write(json.dumps(line) + "\n")
        self.send_response(200 if verified else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
