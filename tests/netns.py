"""Test helper: a network namespace of the test's own, joined to the host by a veth pair, with a TCP echo, a UDP
echo and a DNS responder in it, and the probe script that tries all three. Egress tests use it as the one target
they ever aim at: addresses come from the benchmarking range 198.18.0.0/15 (RFC 2544) that no other route uses,
so nothing outside this machine is ever contacted. Root only."""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.host_accounts import SYSTEM_PYTHON

BENCHMARKING = ipaddress.ip_network("198.18.0.0/15")
SOCKET_TIMEOUT = 10  # seconds each probe would wait; a refusal by the rule must come well before

# Inside the namespace, as root: a TCP echo, a UDP echo and a DNS responder (NXDOMAIN to any query) on its address.
SERVER = r"""
import json, socket, sys, threading
addr = sys.argv[1]
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((addr, 0))
tcp.listen()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind((addr, 0))
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind((addr, 53))

def serve_tcp():
    while True:
        conn, _ = tcp.accept()
        with conn:
            conn.sendall(b"echo:" + conn.recv(64))

def serve_udp():
    while True:
        data, peer = udp.recvfrom(512)
        udp.sendto(b"echo:" + data, peer)

def serve_dns():
    while True:
        query, peer = dns.recvfrom(512)
        dns.sendto(query[:2] + b"\x81\x83" + query[4:6] + bytes(6) + query[12:], peer)

for serve in (serve_tcp, serve_udp, serve_dns):
    threading.Thread(target=serve, daemon=True).start()
print(json.dumps({"tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1]}), flush=True)
sys.stdin.read()
"""

# On the host, as whoever runs it: one TCP exchange, one UDP round trip, one DNS query; each 'ok' or its error.
PROBE = r"""
import errno, json, socket, struct, sys
addr, tcp_port, udp_port, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])

def outcome(attempt):
    try:
        return {"ok": True, "reply": attempt()}
    except TimeoutError:
        return {"ok": False, "error": "timeout", "type": "TimeoutError"}
    except OSError as exc:
        return {"ok": False, "error": errno.errorcode.get(exc.errno, str(exc.errno)), "type": type(exc).__name__}

def tcp():
    with socket.create_connection((addr, tcp_port), timeout=timeout) as s:
        s.sendall(b"tcp")
        return s.recv(64).decode()

def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(b"udp", (addr, udp_port))
        return s.recvfrom(64)[0].decode()

def dns():
    name = b"".join(bytes([len(p)]) + p for p in b"enclave-egress-probe.invalid".split(b".")) + b"\0"
    query = struct.pack(">HHHHHH", 0x4E43, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(query, (addr, 53))
        reply = s.recv(512)
    assert reply[:2] == query[:2] and reply[2] & 0x80, "not a DNS reply"
    return f"rcode={reply[3] & 0x0F}"

print(json.dumps({"tcp": outcome(tcp), "udp": outcome(udp), "dns": outcome(dns)}))
"""


@dataclass(frozen=True)
class Target:
    address: str
    tcp_port: int
    udp_port: int


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def free_subnet() -> ipaddress.IPv4Network:
    """A random /30 in the benchmarking range that overlaps no address or route on this host."""
    used = []
    for what in (["-4", "route", "show", "table", "all"], ["-4", "addr", "show"]):
        listed = subprocess.run(["ip", "-j", *what], check=True, capture_output=True, text=True).stdout
        for entry in json.loads(listed or "[]"):
            for dst in [entry.get("dst")] + [a.get("local") for a in entry.get("addr_info", [])]:
                if dst and dst not in ("default", "broadcast"):
                    used.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
    for _ in range(100):
        subnet = ipaddress.ip_network(f"{BENCHMARKING[random.randrange(0, BENCHMARKING.num_addresses, 4)]}/30")
        if not any(subnet.overlaps(u) for u in used):
            return subnet
    raise RuntimeError("no free /30 in 198.18.0.0/15 on this host")


@contextmanager
def target_network() -> Iterator[Target]:
    """A namespace of our own with the three servers in it, reachable from the host over a veth pair."""
    suffix = secrets.token_hex(3)
    namespace, host_end, ns_end = f"enclave-t-{suffix}", f"et{suffix}h", f"et{suffix}n"
    subnet = free_subnet()
    host_addr, ns_addr = list(subnet.hosts())
    server = None
    try:
        ip("netns", "add", namespace)
        ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        ip("link", "set", ns_end, "netns", namespace)
        ip("addr", "add", f"{host_addr}/30", "dev", host_end)
        ip("link", "set", host_end, "up")
        ip("-n", namespace, "addr", "add", f"{ns_addr}/30", "dev", ns_end)
        ip("-n", namespace, "link", "set", ns_end, "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        server = subprocess.Popen(
            ["ip", "netns", "exec", namespace, SYSTEM_PYTHON, "-I", "-c", SERVER, str(ns_addr)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ports = json.loads(server.stdout.readline())
        yield Target(str(ns_addr), ports["tcp"], ports["udp"])
    finally:
        if server is not None:
            server.stdin.close()
            server.terminate()
            server.wait(timeout=30)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)  # gone with the namespace
