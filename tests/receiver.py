"""A real HTTP server on 127.0.0.1 for webhook tests and the benchmark (standard library only)."""

import http.server
import json
import re
import socket
import socketserver
import threading
import time

# How often serve_forever() looks for shutdown(): its default, 0.5 s, cost every test that
# stops a receiver half a second of waiting.
SHUTDOWN_POLL = {"poll_interval": 0.02}


class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script.

    `responses` is a list of (status, body[, delay seconds][, {header: value}]) used in order;
    the last one repeats.
    """

    def __init__(self, responses=((200, b"ok"),), *, host="127.0.0.1"):
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
                    status, reply, *rest = receiver.responses[index]
                delay = [item for item in rest if isinstance(item, (int, float))]
                extra_headers = next((item for item in rest if isinstance(item, dict)), {})
                if delay:
                    time.sleep(delay[0])
                reply = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    for name, value in extra_headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_POST = do_GET = do_PUT = do_PATCH = handle_any

            def log_message(self, *args):
                pass

        # A deep accept queue: the benchmark opens hundreds of connections at once.
        server_class = type("Server", (http.server.ThreadingHTTPServer,), {"request_queue_size": 1024})
        if ":" in host:
            server_class = type("IPv6Server", (server_class,), {"address_family": socket.AF_INET6})
        self.server = server_class((host, 0), Handler)
        self.server.daemon_threads = True
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{url_host}:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs=SHUTDOWN_POLL, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class RawReceiver:
    """A TCP server on 127.0.0.1 that answers every request with fixed bytes, then closes the
    connection: for answers a well-behaved HTTP server never sends (truncated, trickled).

    With `trickle` (seconds), the bytes from `trickle_from` on are sent one at a time, that
    long apart. `finished` tells whether the whole reply went out.
    """

    def __init__(self, reply, *, trickle=None, trickle_from=0):
        self.requests = []
        self.finished = False
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                while length and len(body) < int(length.group(1)):  # closing on unread data resets
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                receiver.requests.append(head)
                try:
                    if trickle is None:
                        self.request.sendall(reply)
                    else:
                        self.request.sendall(reply[:trickle_from])
                        for index in range(trickle_from, len(reply)):
                            time.sleep(trickle)
                            self.request.sendall(reply[index:index + 1])
                    receiver.finished = True
                except OSError:
                    pass  # the client gave up

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs=SHUTDOWN_POLL, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
