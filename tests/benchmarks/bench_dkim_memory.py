"""Memory growth while DKIM-signing and sending a message with a large file
attachment: ``sendmessage(part, dkim=[rsa, ed25519])`` to a local server.

A fresh interpreter makes the keys and the message, records its resident
memory just before sendmessage and its peak (ru_maxrss) just after; the
figure is the difference. The message is measured, signed once per signer
(each a streaming pass over the serialised message) and sent, each pass
reading the file again. The server, a CaptureServer in the same process,
reads and drops the data past a small limit (552 at the end, expected), so
the figure is the sender's: nothing of the message is kept by anyone.

    python tests/benchmarks/bench_dkim_memory.py [--mb 200] [--signers rsa,ed25519]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import os, resource, sys, time
sys.path.insert(0, {root!r})
path, names = sys.argv[1], sys.argv[2].split(",")
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
import mimecompose, smtpsend
from smtpsend.testing import CaptureServer

def rss_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def pem(key):
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())

made = {{"rsa": lambda: mimecompose.DKIMSigner(domain="example.com", selector="r", key=pem(
             rsa.generate_private_key(public_exponent=65537, key_size=2048))),
         "ed25519": lambda: mimecompose.DKIMSigner(domain="example.com", selector="e", algorithm="ed25519-sha256",
                                                   key=pem(ed25519.Ed25519PrivateKey.generate()))}}
signers = [made[name]() for name in names]
part = mimecompose.compose("See the attached archive.\n", attachments=[path],
                           header=[("From", "a@example.com"), ("To", "b@example.com"), ("Subject", "big")])
sent = [0, 0]
def progress(done, total):
    sent[0], sent[1] = done, total
with CaptureServer(extensions=("PIPELINING", "8BITMIME", "CHUNKING"), max_message_size=1 << 16) as server:
    base = rss_kib()
    started = time.monotonic()
    try:
        smtpsend.sendmessage(part, servers=[f"127.0.0.1:{{server.port}}"], dkim=signers, progress=progress,
                             maxsecs=600)
        outcome = "accepted"
    except smtpsend.DataRefused:
        outcome = "refused-by-the-sink-as-planned"
    seconds = time.monotonic() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak, sent[0], sent[1], outcome, f"{{seconds:.1f}}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200, help="attachment size in MiB (default 200)")
    parser.add_argument("--signers", default="rsa,ed25519", help="comma-separated: rsa, ed25519 (default both)")
    args = parser.parse_args()
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.bin")
        with open(path, "wb") as fh:
            for _ in range(args.mb):
                fh.write(os.urandom(1 << 20))
        out = subprocess.run([sys.executable, "-c", CHILD.format(root=root), path, args.signers],
                             check=True, capture_output=True, text=True).stdout.split()
    base, peak = int(out[0]) / 1024, int(out[1]) / 1024
    sent, total, outcome, seconds = int(out[2]), int(out[3]), out[4], out[5]
    growth = peak - base
    print(f"attachment: {args.mb} MiB of random bytes (base64 on the wire), signers: {args.signers}")
    print(f"sent {sent / 2**20:.1f} of {total / 2**20:.1f} MiB ({outcome}) in {seconds} s")
    print(f"resident memory: {base:.1f} MiB before sendmessage, peak {peak:.1f} MiB")
    verdict = "meets" if growth < 50 else "MISSES"
    print(f"growth while signing and sending: {growth:.1f} MiB ({verdict} the 50 MiB bound)")
    return 0 if growth < 50 and sent == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
