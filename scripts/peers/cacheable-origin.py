"""The origin of the edge benchmarks (bench-edge-hits.sh, bench-edge-vs-plain.sh): three
answers, each cacheable for an hour with an ETag: /api/small (about 1 KB of JSON), /api/large
(70 KB of JSON) and /page.html (70 KB of HTML).

    python3 scripts/peers/cacheable-origin.py <port>
"""
import http.server
import json
import sys

SMALL = json.dumps({"id": 7, "title": "Ship the edge cache", "status": "in_progress",
                    "assignee": {"id": 3, "name": "Ada"}, "tags": ["edge", "cache"],
                    "description": "x" * 800}).encode()
LARGE = json.dumps([{"id": i, "title": f"task {i}", "status": ["open", "done"][i % 2],
                     "assignee": f"user{i % 7}"} for i in range(1000)]).encode()
ROWS = "".join(f"<tr><td>{i}</td><td>Task number {i}</td><td>{['todo', 'done'][i % 2]}</td></tr>\n"
               for i in range(1500))
PAGE = f"<!doctype html><html><head><title>Board</title></head><body><table>\n{ROWS}</table></body></html>\n"
PAGE = PAGE.encode()[:70 * 1024]


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/page.html"):
            body, kind = PAGE, "text/html; charset=utf-8"
        elif self.path.startswith("/api/large"):
            body, kind = LARGE, "application/json"
        else:
            body, kind = SMALL, "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", "public, max-age=3600")
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Origin).serve_forever()
