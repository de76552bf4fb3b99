"""A real loopback HTTP server for the source, with faults injectable per file.

It serves a directory like the release URLs and, for a path given a plan, misbehaves the
way real servers do: status codes, a connection dropped mid-body, a stall, a lying
Content-Length, an HTML page with status 200. Each plan step serves one request, so
"two 500s, then the file" is ``["500", "500", "ok"]``.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class SourceServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.plans: dict[str, list[str]] = {}
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []  # the Authorization header of each GET
        self.stall_seconds = 5.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                server.requests.append(f"HEAD {self.path}")
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                server.send_file_headers(self, path, path.stat().st_size)

            def do_GET(self) -> None:
                server.requests.append(self.path)
                server.authorizations.append(self.headers.get("Authorization"))
                plan = server.plans.get(self.path)
                step = plan.pop(0) if plan else "ok"
                server.serve(self, step)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def serve(self, h: BaseHTTPRequestHandler, step: str) -> None:
        if step.isdigit():
            h.send_response(int(step))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        path = self.root / h.path.lstrip("/")
        if not path.is_file():
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        body = path.read_bytes()
        if step == "html200":
            page = b"<!DOCTYPE html><html><body>Rate limit exceeded</body></html>"
            h.send_response(200)
            h.send_header("Content-Type", "text/html")
            h.send_header("Content-Length", str(len(page)))
            h.end_headers()
            h.wfile.write(page)
            return
        self.send_file_headers(h, path, len(body) + 1000 if step == "long_length" else len(body))
        if step == "drop":  # half the body, then the connection goes away
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)
            return
        if step == "stall":  # headers, then nothing for longer than the client's timeout
            h.wfile.write(body[:100])
            h.wfile.flush()
            time.sleep(self.stall_seconds)
            return
        h.wfile.write(body)

    @staticmethod
    def send_file_headers(h: BaseHTTPRequestHandler, path: Path, length: int) -> None:
        stat = path.stat()
        h.send_response(200)
        h.send_header("Content-Type", "application/gzip")
        h.send_header("ETag", f'"{stat.st_size}-{stat.st_mtime_ns}"')
        h.send_header("Last-Modified", h.date_time_string(int(stat.st_mtime)))
        h.send_header("Content-Length", str(length))
        h.end_headers()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
