#!/usr/bin/env python3
"""Many slow HTTP clients in one process: each opens its own connection, sends one GET and
reads the body at RATE bytes per second, until the process is terminated.

    slow_clients.py URL CLIENTS RATE READY_FILE

Writes READY_FILE once every client has received its first bytes (so the server is carrying
all of them), then keeps reading. Prints how many clients were served and bytes read, on exit.
"""
import signal
import socket
import sys
import time
from urllib.parse import urlsplit

TICK = 0.1


def main():
    url, clients, rate, ready_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    per_tick = max(1, int(rate * TICK))
    socks = []
    for _ in range(clients):
        s = socket.create_connection((parts.hostname, parts.port))
        # A small receive buffer, so the client's pace reaches the server.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        s.sendall(request)
        s.setblocking(False)
        socks.append(s)
    got = [0] * clients
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    ready = False
    next_tick = time.monotonic()
    while not stop:
        for i, s in enumerate(socks):
            if s is None:
                continue
            try:
                data = s.recv(per_tick)
            except BlockingIOError:
                continue
            except OSError:
                socks[i] = None
                continue
            if not data:
                socks[i] = None
                continue
            got[i] += len(data)
        if not ready and all(n > 0 for n in got):
            ready = True
            open(ready_file, "w").write("ready\n")
        next_tick += TICK
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_tick = time.monotonic()
    alive = sum(1 for s in socks if s is not None)
    print(f"{alive} of {clients} slow clients connected, {sum(got) >> 20} MiB read")


if __name__ == "__main__":
    main()
