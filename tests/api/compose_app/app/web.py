"""The compose test's web service: GET / counts a hit in redis and answers "HITS HOSTNAME".

Standard library only (it runs on nano/python): redis is spoken over a raw socket in RESP, and found by its
compose service name, so an answer proves the service network and its DNS work."""

import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REDIS = (os.environ.get("REDIS_HOST", "redis"), 6379)


def redis(*args: str) -> str:
    """One command, one reply line (enough for INCR/PING); a RESP error raises."""
    parts = [a.encode() for a in args]
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection(REDIS, timeout=5) as conn:
        conn.sendall(request)
        reply = conn.makefile("rb").readline().decode().rstrip("\r\n")
    if reply.startswith("-"):
        raise RuntimeError(reply[1:])
    return reply[1:]


class Hits(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/":
            self.send_error(404)
            return
        body = f"{redis('INCR', 'hits')} {socket.gethostname()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    ThreadingHTTPServer(("", 8080), Hits).serve_forever()
