"""An upstream application that is not Rust, for the shield's tests: Python's http.server,
HTTP/1.1 with keep-alive, one thread per connection.

    python3 python_upstream.py <port> <name> [<certificate.pem> <key.pem>]

With a certificate and its key, it speaks HTTPS only.

Routes:
  /echo              the request's method, path and headers as JSON
  /hello             a small cacheable page, with a hop-by-hop field of its own
  /bytes?mb=N        N MiB of zeros, streamed in 64 KiB chunks (chunked encoding)
  /die               promises 1000 bytes, sends 10, closes
  /slow-head?s=S     waits S seconds before answering
  /idle?s=S          sends the head and 5 bytes, waits S seconds, sends the rest
  /healthz           200, or 503 once the file <port>.down exists beside this script's cwd
  /ws                a WebSocket handshake (101 with Sec-WebSocket-Accept), then every byte
                     received is sent back until the client closes
  POST /count        counts the request body's bytes (any framing) and answers the count
  /counter?cc=&sc=&key=&vary=&age=&etag=&lm=&echo=&sleep=
                     how many times this path and query was asked (any method), with the
                     given Cache-Control, Surrogate-Control, Surrogate-Key, Vary, Age, ETag
                     and Last-Modified; `304` with `X-Validated` when If-None-Match names the
                     ETag (or, without one, If-Modified-Since is the Last-Modified); `echo` adds that request header's value to the body; `sleep`
                     seconds pass before the answer
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT = int(sys.argv[1])
NAME = sys.argv[2] if len(sys.argv) > 2 else "upstream"
COUNTS = {}
COUNTS_LOCK = threading.Lock()


def count(path):
    with COUNTS_LOCK:
        COUNTS[path] = COUNTS.get(path, 0) + 1
        return COUNTS[path]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, status, body, content_type="text/plain", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", NAME)
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def query(self, name, default):
        values = parse_qs(urlparse(self.path).query).get(name)
        return float(values[0]) if values else default

    def do_HEAD(self):
        self.do_GET()

    def counter(self):
        asked = count(self.path)
        params = parse_qs(urlparse(self.path).query)
        time.sleep(float(params.get("sleep", ["0"])[0]))
        extra = []
        for param, name in [("cc", "Cache-Control"), ("sc", "Surrogate-Control"),
                            ("key", "Surrogate-Key"), ("tag", "Cache-Tag"), ("cs", "Cache-Status"), ("vary", "Vary"), ("age", "Age"),
                            ("etag", "ETag"), ("lm", "Last-Modified")]:
            if param in params:
                extra.append((name, params[param][0]))
        etag = params.get("etag", [None])[0]
        modified = params.get("lm", [None])[0]
        validated = (etag is not None and self.headers.get("If-None-Match") == etag) or (
            etag is None and modified is not None
            and self.headers.get("If-Modified-Since") == modified)
        if validated:
            # As most servers do, a 304 leaves Surrogate-Control out.
            self.send_response(304)
            for name, value in extra + [("X-Validated", str(asked))]:
                if name != "Surrogate-Control":
                    self.send_header(name, value)
            self.end_headers()
            return
        body = str(asked)
        if "echo" in params:
            body += " " + (self.headers.get(params["echo"][0]) or "-")
        self.send_body(200, body.encode(), extra=extra)

    def websocket(self):
        import base64
        import hashlib
        key = self.headers.get("Sec-WebSocket-Key", "")
        magic = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1((key + magic).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            data = self.connection.recv(65536)
            if not data:
                break
            self.connection.sendall(data)

    def do_GET(self):
        path = urlparse(self.path).path
        if path == "/counter":
            self.counter()
        elif path == "/echo":
            seen = {
                "method": self.command,
                "path": self.path,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
            }
            self.send_body(200, json.dumps(seen).encode(), "application/json")
        elif path == "/hello":
            extra = [
                ("Cache-Control", "public, max-age=60"),
                ("Connection", "X-Hop-Secret"),
                ("X-Hop-Secret", "for this connection only"),
                ("Content-Security-Policy", "default-src 'self' upstream.example"),
            ]
            self.send_body(200, b"hello from " + NAME.encode(), extra=extra)
        elif path == "/bytes":
            chunk = b"\0" * 65536
            count = int(self.query("mb", 1) * 16)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(count):
                self.wfile.write(b"10000\r\n" + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/die":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
        elif path == "/slow-head":
            time.sleep(self.query("s", 3))
            self.send_body(200, b"late")
        elif path == "/idle":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"01234")
            self.wfile.flush()
            time.sleep(self.query("s", 3))
            self.wfile.write(b"56789")
        elif path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self.websocket()
        elif path == "/healthz":
            down = os.path.exists(f"{PORT}.down")
            self.send_body(503 if down else 200, b"down" if down else b"ok")
        else:
            self.send_body(404, b"not here")

    def do_POST(self):
        if urlparse(self.path).path == "/counter":
            length = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(length)
            return self.counter()
        total = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                total += len(self.rfile.read(size))
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length", "0"))
            while remaining:
                read = len(self.rfile.read(min(remaining, 1 << 20)))
                if read == 0:
                    break
                total += read
                remaining -= read
        self.send_body(200, json.dumps({"bytes": total}).encode(), "application/json")


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
if len(sys.argv) > 4:
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
