"""A fake OpenAI-compatible server on 127.0.0.1 for tests: answers with the scripted Responder, or
misbehaves on purpose (429, 500, garbage, hang), and can SIGKILL a client at its N-th request."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fakes import Responder


class FakeOpenAI:
    def __init__(self, mode: str = "ok", hang_seconds: float = 30.0):
        self.mode = mode
        self.hang_seconds = hang_seconds
        self.responder = Responder()
        self.requests = 0
        self.answered = 0
        self.kill_pid: int | None = None
        self.kill_at: int | None = None
        self.fail_after: int | None = None  # answer this many requests, then HTTP 500
        self.delay = 0.0  # seconds each answer takes, so that concurrent requests overlap
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, json.dumps({"object": "list",
                                            "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "tests"}]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests += 1
                    n = server.requests
                if server.kill_at is not None and n == server.kill_at and server.kill_pid:
                    os.kill(server.kill_pid, signal.SIGKILL)
                    return
                if server.fail_after is not None and server.answered >= server.fail_after:
                    return self._send(500, b'{"error": {"message": "down"}}')
                if server.mode == "429":
                    return self._send(429, b'{"error": {"message": "slow down"}}')
                if server.mode == "500":
                    return self._send(500, b'{"error": {"message": "boom"}}')
                if server.mode == "garbage":
                    return self._send(200, b"<html>definitely not json", "text/html")
                if server.mode == "hang":
                    time.sleep(server.hang_seconds)
                    return self._send(504, b"{}")
                schema = body["response_format"]["json_schema"]["schema"]
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(server.delay)
                with server.lock:
                    text = server.responder(body["messages"], schema, seed=body.get("seed"))
                    server.answered += 1
                    server.in_flight -= 1
                reply = {"id": f"c{n}", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
                self._send(200, json.dumps(reply).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
