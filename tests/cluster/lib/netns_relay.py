"""Runs a command in its own network namespace that still reaches one TCP
port of the host's loopback, through a UNIX socket (UNIX sockets are files,
so both namespaces see them).

  netns_relay.py outside SOCK PORT            host side: SOCK -> 127.0.0.1:PORT
  unshare -n netns_relay.py inside SOCK PORT -- CMD...
                                              namespace side: brings lo up,
                                              127.0.0.1:PORT -> SOCK, runs CMD

The harness uses it for GoKubeDownscaler, whose health server always binds
:8081: two clusters on one host (two worktrees) would otherwise collide.
"""

import os
import signal
import socket
import subprocess
import sys
import threading


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listener, connect):
    while True:
        client, _ = listener.accept()
        try:
            upstream = connect()
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


def outside(sock, port):
    if os.path.exists(sock):
        os.unlink(sock)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock)
    listener.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(listener, lambda: socket.create_connection(("127.0.0.1", port)))


def inside(sock, port, argv):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)

    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        return s

    threading.Thread(target=serve, args=(listener, connect), daemon=True).start()
    child = subprocess.Popen(argv)
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    signal.signal(signal.SIGINT, lambda *_: child.terminate())
    sys.exit(child.wait())


def main():
    mode, sock, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "outside":
        outside(sock, port)
    elif mode == "inside" and sys.argv[4] == "--":
        inside(sock, port, sys.argv[5:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
