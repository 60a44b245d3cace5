#!/usr/bin/env python3
"""Kernel-side TCP peer for the interop tests (tests/managed/Interop). Runs inside the client namespace.

    kpeer.py listen PORT [options]        accept one connection on 198.18.0.1:PORT, then transfer
    kpeer.py connect HOST PORT [options]  connect, then transfer

Transfer: send --send bytes of random data and receive until end of stream. --order says how the two directions
interleave: concurrent (a sender thread next to the receiver), send-first (send, shutdown(SHUT_WR), then receive:
the peer keeps sending after our FIN), recv-first (receive to end of stream, then send: we send after the peer's FIN).
After the transfer the socket is closed and one JSON line is printed:
    {"sent": N, "sent_sha": hex, "received": M, "recv_sha": hex, "error": null, "tcpinfo": {...}, "seconds": s}
"error" is the errno name when connect/accept/transfer failed (e.g. "ECONNREFUSED"). "tcpinfo" is what the kernel
negotiated (TCP_INFO, read once the connection is up): options bits, send/receive window scale, MSS.
In listen mode the line "LISTENING" is printed (and flushed) once the socket listens.
"""
import argparse
import errno
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time

CHUNK = 65536


def tcp_info(sock):
    # struct tcp_info (linux/tcp.h): u8 state, ca_state, retransmits, probes, backoff, options,
    # snd_wscale:4 | rcv_wscale:4 (low nibble first), ...; u32 rto, ato, snd_mss, rcv_mss at offset 8.
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    options, wscale = raw[5], raw[6]
    rto, ato, snd_mss, rcv_mss = struct.unpack_from("<IIII", raw, 8)
    total_retrans = struct.unpack_from("<I", raw, 100)[0] if len(raw) >= 104 else 0
    return {
        "timestamps": bool(options & 1),   # TCPI_OPT_TIMESTAMPS
        "sack": bool(options & 2),         # TCPI_OPT_SACK
        "wscale": bool(options & 4),       # TCPI_OPT_WSCALE
        "snd_wscale": wscale & 0x0F,       # the peer's shift (what it announced in its SYN)
        "rcv_wscale": wscale >> 4,         # our shift
        "snd_mss": snd_mss,
        "total_retrans": total_retrans,
    }


def sender(sock, count, result):
    h = hashlib.sha256()
    sent = 0
    try:
        while sent < count:
            block = os.urandom(min(CHUNK, count - sent))
            sock.sendall(block)
            h.update(block)
            sent += len(block)
    except OSError as e:
        result["error"] = errno.errorcode.get(e.errno, str(e))
    result["sent"] = sent
    result["sent_sha"] = h.hexdigest()


def receiver(sock, result):
    h = hashlib.sha256()
    received = 0
    try:
        while True:
            data = sock.recv(CHUNK)
            if not data:
                break
            h.update(data)
            received += len(data)
    except OSError as e:
        result["error"] = errno.errorcode.get(e.errno, str(e))
    result["received"] = received
    result["recv_sha"] = h.hexdigest()


def transfer(sock, args, out):
    out["tcpinfo"] = tcp_info(sock)
    send_result, recv_result = {}, {}
    if args.order == "concurrent":
        t = threading.Thread(target=lambda: (sender(sock, args.send, send_result), shut(sock)))
        t.start()
        receiver(sock, recv_result)
        t.join()
    elif args.order == "send-first":
        sender(sock, args.send, send_result)
        shut(sock)
        receiver(sock, recv_result)
    else:
        receiver(sock, recv_result)
        sender(sock, args.send, send_result)
        shut(sock)
    out.update(send_result)
    out.update(recv_result)
    out["error"] = send_result.get("error") or recv_result.get("error")
    out["tcpinfo"]["total_retrans"] = tcp_info(sock)["total_retrans"]


def shut(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["listen", "connect"])
    p.add_argument("rest", nargs="+")
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--order", choices=["concurrent", "send-first", "recv-first"], default="concurrent")
    p.add_argument("--bind", default="198.18.0.1")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    out = {"sent": 0, "sent_sha": None, "received": 0, "recv_sha": None, "error": None, "tcpinfo": None}
    start = time.monotonic()
    sock = None
    try:
        if args.mode == "listen":
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((args.bind, int(args.rest[0])))
            ls.listen(1)
            ls.settimeout(args.timeout)
            print("LISTENING", flush=True)
            sock, _ = ls.accept()
            ls.close()
        else:
            sock = socket.create_connection((args.rest[0], int(args.rest[1])), timeout=args.timeout)
        sock.settimeout(args.timeout)
        transfer(sock, args, out)
    except OSError as e:
        out["error"] = errno.errorcode.get(e.errno, type(e).__name__) if e.errno else type(e).__name__
    finally:
        if sock is not None:
            sock.close()
    out["seconds"] = round(time.monotonic() - start, 3)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
