"""A real HTTP server on 127.0.0.1 for webhook tests and the benchmark (standard library only)."""

import http.server
import json
import threading
import time


class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script.

    `responses` is a list of (status, body[, delay seconds]) used in order; the last one repeats.
    """

    def __init__(self, responses=((200, b"ok"),)):
        self.responses = list(responses)
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver.lock:
                    receiver.requests.append({
                        "method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                        "body": body, "received_at": time.time(),
                    })
                    index = min(len(receiver.requests), len(receiver.responses)) - 1
                    status, reply, *delay = receiver.responses[index]
                if delay:
                    time.sleep(delay[0])
                reply = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_POST = do_GET = do_PUT = do_PATCH = handle_any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
