# Loopback probe of an HTTP server's transport, for choosing and checking the server's HTTP layer
# (docs/ARCHITECTURE.md): pipelining, a slow client against a 2 s header timeout, a smuggling pattern,
# the body of a refusal, a POST without a length. Usage: python3 bench/http_transport_probe.py PORT
import socket, sys, time, threading
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(3); return s
def read_all(s, t=2.0):
    s.settimeout(t); out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            out += d
    except Exception: pass
    return out
# 1. pipelining
s = conn(); s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
print("pipelined 3 GETs -> responses:", read_all(s).count(b"HTTP/1.1 "))
# 2. slow client: 1 byte / 0.5 s, timeout set to 2 s; closed by the server after how long?
s = conn(); start = time.time(); closed = None
req = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40 + b"\r\n\r\n"
for i in range(len(req)):
    try:
        s.sendall(req[i:i+1])
        s.settimeout(0.5)
        if s.recv(1) == b"": closed = time.time() - start; break
    except socket.timeout: pass
    except Exception: closed = time.time() - start; break
    if time.time() - start > 8: break
print("slow client (1 byte/0.5 s, timeout 2 s):", "closed after %.1f s" % closed if closed else "still open after %.1f s" % (time.time() - start))
# 3. conflicting Content-Length
s = conn(); s.sendall(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}}")
print("conflicting Content-Length ->", read_all(s)[:60])
# 4. body over the per-connection memory limit, and the body of a refusal
s = conn(); s.sendall(b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
r = read_all(s); print("100 kB URL ->", r.split(b"\r\n")[0], "body:", r.split(b"\r\n\r\n", 1)[-1][:80])
# 5. POST without Content-Length
s = conn(); start = time.time(); s.sendall(b"POST /p HTTP/1.1\r\nHost: x\r\n\r\n")
r = read_all(s, 5); print("POST without length -> %r after %.1f s" % (r[:40], time.time() - start))
