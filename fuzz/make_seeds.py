#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets (fuzz/seeds/<target>/): small
well-formed inputs that reach deep into each parser. Run from the repository root."""
import os, struct, json

def hdr(cmd, status=0, next_cmd=0, msg_id=1, credits=1, flags=1):
    return (b"\xfeSMB" + struct.pack("<HHIHHII", 64, 1, status, cmd, credits, flags, next_cmd)
            + struct.pack("<QIIQ", msg_id, 0xfeff, 1, 0x1234) + b"\0" * 16)

def utf16(s):
    return s.encode("utf-16-le")

def dir_entry(name, attrs, size, last=False):
    n = utf16(name)
    body = struct.pack("<II", 0, 0) + struct.pack("<QQQQQQ", 0, 0, 133_000_000_000_000_000, 0, size, size)
    body += struct.pack("<II", attrs, len(n)) + n
    pad = (-len(body)) % 8
    body += b"\0" * pad
    nxt = 0 if last else len(body)
    return struct.pack("<I", nxt) + body[4:]

def query_directory():
    entries = dir_entry(".", 0x10, 0) + dir_entry("a file.txt", 0x20, 42) + dir_entry("Ünïcode", 0x10, 0, last=True)
    body = struct.pack("<HHI", 9, 64 + 8, len(entries)) + entries
    return hdr(0x0E) + body

def read_answer(data=b"hello world"):
    body = struct.pack("<HBBIII", 17, 64 + 16, 0, len(data), 0, 0) + data
    return hdr(0x08) + body

def close_answer():
    body = struct.pack("<HHI", 60, 1, 0) + struct.pack("<QQQQQQ", 1, 2, 133_000_000_000_000_000, 4, 4096, 42) + struct.pack("<I", 0x20)
    return hdr(0x06) + body

def create_answer():
    body = struct.pack("<HBBI", 89, 0, 0, 1) + b"\0" * 32 + struct.pack("<QQ", 0, 0) + struct.pack("<II", 0x10, 0) + bytes(range(16)) + struct.pack("<II", 0, 0)
    return hdr(0x05) + body

def challenge():
    av = struct.pack("<HH", 2, 8) + utf16("DOM\0") + struct.pack("<HH", 7, 8) + struct.pack("<Q", 133_000_000_000_000_000) + struct.pack("<HH", 0, 0)
    m = b"NTLMSSP\0" + struct.pack("<I", 2) + struct.pack("<HHI", 0, 0, 48) + struct.pack("<I", 0xE2898215) + b"\x01" * 8 + b"\0" * 8 + struct.pack("<HHI", len(av), len(av), 48) + av
    blob = b"\xa1\x81\x80" + m
    body = struct.pack("<HHHH", 9, 0, 64 + 8, len(blob)) + blob
    return hdr(0x01, status=0xC0000016) + body

def negotiate_311():
    ctx = struct.pack("<HHI", 1, 38, 0) + struct.pack("<HHH", 1, 32, 1) + b"\x22" * 32
    ctx += b"\0" * ((-len(ctx)) % 8)
    ctx += struct.pack("<HHI", 2, 4, 0) + struct.pack("<HH", 1, 2)
    off = 64 + 64
    body = struct.pack("<HHHH", 65, 1, 0x0311, 2) + b"\x11" * 16 + struct.pack("<IIIIQQHHI", 0x2F, 1 << 20, 1 << 20, 1 << 20, 0, 0, 0, 0, off)
    body = body.ljust(64, b"\0") + ctx
    return hdr(0x00) + body

def compound():
    a = read_answer()
    a += b"\0" * ((-len(a)) % 8)
    a = a[:20] + struct.pack("<I", len(a)) + a[24:]
    return a + close_answer()

def frame(tag, payload):
    return bytes([tag]) + struct.pack(">I", len(payload)) + payload

def write(target, name, data):
    d = os.path.join("fuzz", "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

for n, f in [("query_directory", query_directory), ("read", read_answer), ("close", close_answer),
             ("create", create_answer), ("challenge", challenge), ("negotiate_311", negotiate_311),
             ("compound", compound)]:
    write("smb2_answer", n, f())
    # a transform header around it (it will not decrypt: the fuzzer learns the shape)
    plain = f()
    write("smb2_sealed", n, b"\xfdSMB" + b"\0" * 16 + b"\x01" * 16 + struct.pack("<IHHQ", len(plain), 0, 1, 0x1234) + plain)

listing = b""
for name, d, size, mtime in [("a.txt", 0, 5, 1_700_000_000_000_000_000), ("sub", 1, 0, 0)]:
    nb = name.encode()
    listing += bytes([d]) + struct.pack("<QqI", size, mtime, len(nb)) + nb
write("worker_frames", "listing", frame(ord("O"), b"{}") + frame(ord("D"), listing) + frame(ord("Z"), json.dumps({"dir": False, "size": 5, "mtime_ns": 1}).encode()))
write("worker_frames", "error", frame(ord("E"), json.dumps({"kind": "access_denied", "message": "denied"}).encode()))

for f in sorted(os.listdir(os.path.join("config", "tests", "fixtures"))):
    if f.endswith(".yaml"):
        with open(os.path.join("config", "tests", "fixtures", f), "rb") as src:
            write("config_yaml", f, src.read())
write("config_yaml", "interpolation.yaml", b"version: 1\nstate_dir: ${HOME:-/x}/state\napi:\n  listen: 127.0.0.1:8080\n  rate_limits: { client: 10/s, failed_auth: off }\n  oidc: { issuer: 'https://idp', audience: [a, b], role_map: { x: admin } }\nconnectors:\n  - { id: a, kind: local, path: /srv, target: /a, schedule: '*/5 * * * *' }\n")

write("extract", "html", b"\x02<html><head><title>T</title></head><body><h1>Head</h1><p>Para &amp; more</p><script>x</script></body></html>")
write("extract", "markdown", b"\x03# Title\n\nSome *text*.\n\n## Sub\n\n- a\n- b\n\n```\ncode\n```\n")
write("extract", "csv", b"\x04name,value\n\"a, b\",1\nc,2\n")
write("extract", "text", b"\x05\xef\xbb\xbfplain text\r\nwith lines\n")

rounds = [[
    {"id": "r", "root": {}, "folder": {}},
    {"id": "f2", "name": "b.txt", "parentReference": {"id": "d"}, "file": {"hashes": {"quickXorHash": "AAAA"}}, "size": 2, "lastModifiedDateTime": "2023-11-14T22:13:20.5Z"},
    {"id": "d", "name": "docs", "parentReference": {"id": "r"}, "folder": {}},
    {"id": "n", "name": "Notebook", "parentReference": {"id": "r"}, "package": {"type": "oneNote"}},
    {"roles": ["read"], "grantedToV2": {"user": {"id": "u1"}}, "link": {"scope": "organization"}, "id": "p1"},
], [
    {"id": "d", "name": "renamed", "parentReference": {"id": "r"}, "folder": {}},
    {"id": "d", "deleted": {"state": "deleted"}},
]]
write("graph_delta", "rounds.json", json.dumps(rounds).encode())

# a pack's tail (store format 2): 40 bytes of blobs, the zstd-compressed JSON index, the
# trailer (index length, flags, magic); zstd from the command line
import subprocess
index = json.dumps({"format": 2, "blobs": [
    {"id": "ab" * 32, "offset": 0, "length": 30, "size": 30, "compression": "none"},
    {"id": "cd" * 32, "offset": 30, "length": 10, "size": 900, "compression": "zstd"}]}).encode()
packed = subprocess.run(["zstd", "-q", "-c"], input=index, capture_output=True, check=True).stdout
write("pack_index", "two_blobs", b"\x07" * 40 + packed + struct.pack("<II", len(packed), 0) + b"TRBPACK2")
