#!/usr/bin/env python3
"""s3-fault-proxy.py LISTEN_PORT UPSTREAM_PORT RULES_FILE LOG_FILE

An HTTP/1.1 proxy on 127.0.0.1 between the S3 client and the server, for
tests.  LISTEN_PORT 0 lets the kernel pick a free port; the port listened
on is printed as "port N" once the proxy accepts connections.  Every request is logged to LOG_FILE as "METHOD PATH STATUS" (the
query string is dropped; nothing secret is in the path).  RULES_FILE is
re-read on every request; each line is "KIND METHOD COUNT [SUBSTRING]":
the next COUNT requests with that METHOD (and SUBSTRING in the path with
its query string) get
the fault KIND instead of a normal answer, then the rule is used up:

  503       answer 503 Slow Down without forwarding
  reset     read part of the request body, then reset the connection
  truncate  forward, but send only half of the response body, then close
  stall     read the request, answer nothing, close after 30 s
  endless   answer 200 with a chunked body that never ends (zeros)
  trickle   forward, then send the response body at 2 bytes/s
  body=FILE answer 200 with FILE's bytes as the body (a crafted listing)

Requests are forwarded with "Connection: close" upstream and answered with
"Connection: close"; signed headers are passed through unchanged.
"""
import os
import socket
import struct
import sys
import threading
import time

listen_port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
rules_file, log_file = sys.argv[3], sys.argv[4]
lock = threading.Lock()
used = {}  # rule line index -> times used


def take_fault(method, path):
    with lock:
        try:
            lines = open(rules_file).read().splitlines()
        except OSError:
            return None
        for i, line in enumerate(lines):
            f = line.split()
            if len(f) < 3 or f[1] != method:
                continue
            if len(f) > 3 and f[3] not in path:
                continue
            key = (i, line)
            if used.get(key, 0) < int(f[2]):
                used[key] = used.get(key, 0) + 1
                return f[0]
    return None


def log(method, path, status):
    with lock:
        with open(log_file, "a") as f:
            f.write("%s %s %s\n" % (method, path.split("?")[0], status))


def read_head(sock, buf):
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            return None, buf
        buf += d
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return int(v.strip())
    return 0


def set_close(head):
    lines = [l for l in head.split(b"\r\n")[:-2]
             if not l.lower().startswith(b"connection:")]
    return b"\r\n".join(lines + [b"Connection: close", b"", b""])


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def handle(client):
    buf = b""
    try:
        head, buf = read_head(client, buf)
        if head is None:
            client.close()
            return
        method, path = head.split(b" ")[:2]
        method, path = method.decode(), path.decode()
        n = content_length(head)
        fault = take_fault(method, path)
        if b"\r\nexpect: 100-continue" in head.lower():
            # Answer for the server, which gets the body in one piece.
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            head = b"\r\n".join(l for l in head.split(b"\r\n")
                                 if not l.lower().startswith(b"expect:"))
        if fault == "reset":
            # Read part of the upload, then drop the connection.
            want = max(1, n // 2)
            while len(buf) < want:
                d = client.recv(65536)
                if not d:
                    break
                buf += d
            log(method, path, "reset")
            reset(client)
            return
        while len(buf) < n:
            d = client.recv(65536)
            if not d:
                break
            buf += d
        body = buf[:n]
        if fault == "503":
            log(method, path, "503")
            client.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n"
                           b"Connection: close\r\n\r\n")
            client.close()
            return
        if fault == "endless":
            log(method, path, "endless")
            client.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                           b"Connection: close\r\n\r\n")
            chunk = b"\0" * 65536
            while True:
                client.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        if fault and fault.startswith("body="):
            with open(fault[5:], "rb") as f:
                data = f.read()
            log(method, path, "body")
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
                           b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                           % len(data) + data)
            client.close()
            return
        if fault == "stall":
            log(method, path, "stall")
            time.sleep(30)
            client.close()
            return
        up = socket.create_connection(("127.0.0.1", upstream_port))
        up.sendall(set_close(head) + body)
        resp = b""
        while True:
            d = up.recv(65536)
            if not d:
                break
            resp += d
        up.close()
        i = resp.find(b"\r\n\r\n")
        rhead, rbody = resp[:i + 4], resp[i + 4:]
        while rhead.startswith(b"HTTP/1.1 100"):
            i = rbody.find(b"\r\n\r\n")
            rhead, rbody = rbody[:i + 4], rbody[i + 4:]
        status = rhead.split(b" ")[1].decode() if i > 0 else "?"
        if fault == "truncate" and len(rbody) > 1:
            log(method, path, "truncate")
            client.sendall(set_close(rhead) + rbody[:len(rbody) // 2])
            reset(client)
            return
        if fault == "trickle":
            log(method, path, "trickle")
            client.sendall(set_close(rhead))
            for b in rbody:
                client.sendall(bytes([b]))
                time.sleep(0.5)
            client.close()
            return
        log(method, path, status)
        client.sendall(set_close(rhead) + rbody)
        client.close()
    except (OSError, ValueError, IndexError):
        try:
            client.close()
        except OSError:
            pass


def main():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(64)
    print("port %d" % srv.getsockname()[1], flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


main()
