"""Peak memory while serialising a message with a large file attachment.

Each measurement runs in a fresh interpreter, which records its resident
memory just before serialising and its peak (ru_maxrss) just after; the
figure is the difference. The email package is measured the same way, on
the same file, for comparison.

    python tests/benchmarks/bench_memory.py [--mb 200] [--no-stdlib]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import os, resource, sys
sys.path.insert(0, {root!r})
path, which = sys.argv[1], sys.argv[2]

def rss_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

if which == "mimecompose":
    import mimecompose
    body = mimecompose.initialize("text/plain", string="See the attached archive.\n")
    att = mimecompose.initialize("application/octet-stream", file=path, filename="big.bin")
    part = mimecompose.initialize("multipart/mixed", parts=[body, att],
                                  header=[("Subject", "big"), ("To", "a@example.com")])
    base = rss_kib()
    with open(os.devnull, "wb") as out:
        size = part.copymessage(out)
else:
    from email.message import EmailMessage
    from email import policy
    msg = EmailMessage()
    msg["Subject"] = "big"
    msg["To"] = "a@example.com"
    msg.set_content("See the attached archive.\n")
    base = rss_kib()
    with open(path, "rb") as fh:
        msg.add_attachment(fh.read(), maintype="application", subtype="octet-stream", filename="big.bin")
    with open(os.devnull, "wb") as out:
        data = msg.as_bytes(policy=policy.SMTP)
        size = len(data)
        out.write(data)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak, size)
"""


def measure(path: str, which: str) -> tuple[float, float, int]:
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=root), path, which],
                         check=True, capture_output=True, text=True).stdout.split()
    base, peak, size = int(out[0]), int(out[1]), int(out[2])
    return base / 1024, peak / 1024, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200, help="attachment size in MiB (default 200)")
    parser.add_argument("--no-stdlib", action="store_true", help="skip the email package run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.bin")
        with open(path, "wb") as fh:
            for _ in range(args.mb):
                fh.write(os.urandom(1 << 20))
        print(f"attachment: {args.mb} MiB of random bytes (base64 on the wire)")
        print(f"{'library':<14}{'baseline MiB':>14}{'peak MiB':>12}{'above baseline':>16}{'message MiB':>14}")
        results = {}
        for which in ["mimecompose"] + ([] if args.no_stdlib else ["email"]):
            base, peak, size = measure(path, which)
            results[which] = peak - base
            print(f"{which:<14}{base:>14.1f}{peak:>12.1f}{peak - base:>16.1f}{size / 2**20:>14.1f}")
        ours = results["mimecompose"]
        verdict = "meets" if ours < 50 else "MISSES"
        print(f"mimecompose peak above baseline: {ours:.1f} MiB ({verdict} the 50 MiB bound)")
        if "email" in results:
            print(f"email package / mimecompose: {results['email'] / max(ours, 0.1):.0f}x the memory")
    return 0 if ours < 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
