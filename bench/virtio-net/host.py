# The host side of bench/virtio-net, run inside the bench's network namespace on the TAP's side:
# counts the frames the guest sends and sends the frames the guest receives, through one AF_PACKET
# socket bound to the TAP.
#
#   python3 host.py IFNAME GUEST_MAC HOST_IP GUEST_IP TX_PORT DATA_PORT END_PORT
#
# Commands on stdin, one a line; each answer is one JSON line on stdout:
#   send PHASE BYTES SECONDS RATE  frames of BYTES (Ethernet, no FCS) to the guest's MAC, UDP to DATA_PORT
#                                  with PHASE as the first payload word, RATE a second (in bursts, one
#                                  per millisecond) for SECONDS; answers {"sent": n, "seconds": s}. Then
#                                  one END_PORT frame of that phase a millisecond until the next command.
#   count                          {"tx": {"<bytes>": frames}, "drops": n}: frames from the guest to
#                                  TX_PORT seen so far, by length, and the socket's drops (the kernel
#                                  could not queue them to us).
#   quit                           exits.
import json
import os
import select
import socket
import struct
import sys
import threading
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
ETH_HLEN = 14
IPV4_HLEN = 20
UDP_HLEN = 8
RCVBUF = 8 << 20
END_INTERVAL_S = 0.001
TICK_S = 0.001

ifname, guest_mac, host_ip, guest_ip = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
tx_port, data_port, end_port = (int(x) for x in sys.argv[5:8])
host_mac = open(f"/sys/class/net/{ifname}/address").read().strip()

sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (root)
sock.bind((ifname, 0))
counts = {}
lock = threading.Lock()


def count_loop():
    while True:
        data, addr = sock.recvfrom(65536)
        if addr[2] == PACKET_OUTGOING or len(data) < ETH_HLEN + IPV4_HLEN + UDP_HLEN:
            continue
        if data[12:14] != b"\x08\x00" or data[ETH_HLEN + 9] != 17:
            continue
        ihl = (data[ETH_HLEN] & 0xF) * 4
        (dport,) = struct.unpack_from("!H", data, ETH_HLEN + ihl + 2)
        if dport == tx_port:
            with lock:
                counts[len(data)] = counts.get(len(data), 0) + 1


def mac_bytes(text):
    return bytes(int(h, 16) for h in text.split(":"))


def checksum(b):
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(size, dport, phase):
    payload = struct.pack("!I", phase).ljust(size - ETH_HLEN - IPV4_HLEN - UDP_HLEN, b"\0")
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, IPV4_HLEN + UDP_HLEN + len(payload), 0, 0, 64, 17, 0,
                               socket.inet_aton(host_ip), socket.inet_aton(guest_ip)))
    struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
    udp = struct.pack("!HHHH", dport, dport, UDP_HLEN + len(payload), 0)
    return mac_bytes(guest_mac) + mac_bytes(host_mac) + b"\x08\x00" + bytes(ip) + udp + payload


pending = b""


def command_waiting():
    return b"\n" in pending or bool(select.select([0], [], [], END_INTERVAL_S)[0])


def next_command():
    """The next line from stdin (unbuffered: select must see what we have not read), or None at EOF."""
    global pending
    while b"\n" not in pending:
        chunk = os.read(0, 4096)
        if not chunk:
            return None
        pending += chunk
    line, pending = pending.split(b"\n", 1)
    return line.decode()


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def send(phase, size, seconds, rate):
    data = frame(size, data_port, phase)
    end = frame(size, end_port, phase)
    burst = max(1, rate // 1000)
    sent = 0
    start = time.perf_counter()
    tick = start
    while time.perf_counter() - start < seconds:
        for _ in range(burst):
            try:
                sock.send(data)
                sent += 1
            except OSError:
                pass  # the TAP's queue is full: that frame is the one the guest could not take
        tick += TICK_S
        delay = tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    answer({"sent": sent, "seconds": time.perf_counter() - start})
    while not command_waiting():
        try:
            sock.send(end)
        except OSError:
            pass


threading.Thread(target=count_loop, daemon=True).start()
answer({"ready": True})
while (line := next_command()) is not None:
    words = line.split()
    if not words:
        continue
    if words[0] == "send":
        send(int(words[1]), int(words[2]), float(words[3]), int(words[4]))
    elif words[0] == "count":
        raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        _, drops = struct.unpack("II", raw)
        with lock:
            answer({"tx": {str(k): v for k, v in counts.items()}, "drops": drops})
    elif words[0] == "quit":
        break
os._exit(0)
