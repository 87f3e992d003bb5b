"""A private Postfix + Dovecot pair on 127.0.0.1, for the real-server tests.

    python tests/rig/rig.py install             # the Debian packages (root; idempotent)
    python tests/rig/rig.py start [STATE_DIR]   # install if needed, configure, start; prints the state dir
    python tests/rig/rig.py stop STATE_DIR      # stop exactly the daemons started there
    python tests/rig/rig.py remove STATE_DIR    # stop them and delete the state directory

The test suite's ``rig`` fixture (tests/conftest.py) runs this only under
CI=true or SMTPSEND_RIG=1, and removes its state directory at the end.

Everything lives in one state directory: configuration, queue, mailboxes,
logs, a throwaway CA and server certificate. /etc's defaults are not used,
nothing listens beyond 127.0.0.1, and no mail can leave the machine (there
is no SMTP client service; other domains get an error transport).

Ports:      2525 SMTP, STARTTLS offered, AUTH before and after TLS
            2526 SMTP without TLS, AUTH in the clear (for refusal tests)
            2587 submission: STARTTLS and AUTH required
            2465 submissions: implicit TLS, AUTH required
            2110 POP3 with STLS, APOP, SASL      2995 POP3S
            2527 SMTP through the OpenDKIM milter (2891), when opendkim is installed
            2424 LMTP (Dovecot, STARTTLS offered), and the Unix socket STATE/dovecot/run/lmtp
Users:      alice@example.test / alice-pw, bob@example.test / bob-pw,
            carol@example.test / pässwörd (non-ASCII password),
            jörg@example.test / joerg-pw (non-ASCII local part)
Addresses:  nobody@example.test is unknown (550 at RCPT);
            bounce-me@example.test is accepted, then bounced (5.1.1);
            anything@relay.example.test is accepted, then deferred (for ETRN).
            tiny@example.test / tiny-pw: in Dovecot only (LMTP), with a 1 KiB quota
SIZE limit: 10485760 octets.
DKIM:       OpenDKIM (optional: only when installed) verifies mail arriving on
            2527 and adds Authentication-Results (authserv-id mail.example.test),
            with the public keys of STATE/opendkim/public-keys instead of DNS:
            rig._domainkey.example.test (RSA, STATE/opendkim/keys/rig.private)
            and rig-ed._domainkey.example.test (Ed25519, keys/rig-ed.private).
            Authenticated mail From @signed.example.test on 2527 is signed
            by OpenDKIM with the file-based key of its KeyTable (the same RSA
            key, published as rig._domainkey.signed.example.test).
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterable

PORTS = {"smtp": 2525, "plain": 2526, "submission": 2587, "submissions": 2465, "pop3": 2110, "pop3s": 2995,
         "lmtp": 2424}
DKIM_PORTS = {"dkim": 2527, "milter": 2891}
USERS = {
    "alice@example.test": ("alice-pw", "alice"),
    "bob@example.test": ("bob-pw", "bob"),
    "carol@example.test": ("pässwörd", "carol"),
    "jörg@example.test": ("joerg-pw", "joerg"),
}
ALIASES = {"postmaster": "alice", "root": "alice", "abuse": "alice"}
SYSTEM_USER = "mailrig"
PACKAGES = ["postfix", "dovecot-core", "dovecot-pop3d", "dovecot-lmtpd", "tcllib", "tcl-tls", "opendkim",
            "opendkim-tools", "redis-server"]   # redis-server: the broker of tests/test_celery.py
# Dovecot's LMTP (RFC 2033): the users above, and tiny@ whose quota
# (LMTP_QUOTA octets) refuses any message but the smallest after the data.
LMTP_USERS = {"tiny@example.test": ("tiny-pw", "tiny")}
LMTP_QUOTA = 1024
LMTP_SOCKET = "dovecot/run/lmtp"   # under the state directory


def available() -> tuple[bool, str]:
    """Whether the rig can run here, and why not."""
    missing = [b for b in ("postfix", "dovecot") if shutil.which(b, path="/usr/sbin:/usr/bin") is None]
    if missing and os.geteuid() != 0:
        return False, f"{', '.join(missing)} not installed and not root to install them"
    if os.geteuid() != 0:
        return False, "the rig must run as root (it starts Postfix and Dovecot)"
    return True, ""


def install() -> None:
    """Install Postfix, Dovecot, OpenDKIM (and tcllib, for the side-by-side
    tests; redis-server, the Celery tests' broker) from Debian's packages,
    non-interactively; only what is missing.

    Nothing may start during the install: "No configuration" leaves Postfix
    without a main.cf, and policy-rc.d keeps the stock Dovecot (listening
    on every address) from starting.
    """
    missing = [p for p in PACKAGES if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p],
                                                      capture_output=True, text=True).stdout
               != "install ok installed"]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    selections = ("postfix postfix/main_mailer_type select No configuration\n"
                  "postfix postfix/mailname string mail.example.test\n")
    subprocess.run(["debconf-set-selections"], input=selections, text=True, check=True)
    policy = "/usr/sbin/policy-rc.d"
    made_policy = not os.path.exists(policy)
    if made_policy:
        with open(policy, "w") as fh:
            fh.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                        "-o", "Dpkg::Options::=--force-confold", *missing], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    finally:
        if made_policy:
            os.remove(policy)


def _system_user() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--user-group", SYSTEM_USER], check=True)
        entry = pwd.getpwnam(SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _write(path: str, text: str, mode: int = 0o644) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, mode)


def _certificates(state: str) -> None:
    import trustme
    ca = trustme.CA(organization_name="mail test rig CA")
    leaf = ca.issue_cert("localhost", "mail.example.test", "127.0.0.1")
    tls = os.path.join(state, "tls")
    os.makedirs(tls, exist_ok=True)
    ca.cert_pem.write_to_path(os.path.join(tls, "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(os.path.join(tls, "server.crt"))
    leaf.private_key_pem.write_to_path(os.path.join(tls, "server.key"))
    os.chmod(os.path.join(tls, "server.key"), 0o600)


def dkim_available() -> bool:
    """Whether OpenDKIM is installed (the DKIM part of the rig is optional)."""
    return shutil.which("opendkim", path="/usr/sbin:/usr/bin") is not None


def _opendkim(state: str) -> None:
    """OpenDKIM's configuration in STATE/opendkim: a key pair per algorithm
    (the private keys in files, as a KeyTable points at them), their public
    records in a TestPublicKeys file, a SigningTable for signed.example.test.
    Mail from 127.0.0.1 is verified: InternalHosts names only 127.0.0.2."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    od = os.path.join(state, "opendkim")
    keys = os.path.join(od, "keys")
    os.makedirs(keys, exist_ok=True)
    user = pwd.getpwnam("opendkim")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    files = {
        "rig.private": rsa_key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL,
                                             ser.NoEncryption()),
        "rig-ed.private": ed_key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()),
    }
    for name, data in files.items():
        path = os.path.join(keys, name)
        with open(path, "wb") as fh:
            fh.write(data)
        os.chmod(path, 0o600)
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chown(keys, user.pw_uid, user.pw_gid)
    os.chmod(keys, 0o700)
    spki = rsa_key.public_key().public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    raw = ed_key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    rsa_record = "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode()
    ed_record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
    _write(os.path.join(od, "public-keys"), f"rig._domainkey.example.test {rsa_record}\n"
           f"rig-ed._domainkey.example.test {ed_record}\n"
           f"rig._domainkey.signed.example.test {rsa_record}\n")
    _write(os.path.join(od, "keytable"),
           f"rig._domainkey.signed.example.test signed.example.test:rig:{keys}/rig.private\n")
    _write(os.path.join(od, "signingtable"), "signed.example.test rig._domainkey.signed.example.test\n")
    _write(os.path.join(od, "internal-hosts"), "127.0.0.2\n")
    _write(os.path.join(od, "opendkim.conf"), f"""\
Syslog                  no
Mode                    sv
Background              yes
PidFile                 {od}/opendkim.pid
Socket                  inet:{DKIM_PORTS['milter']}@127.0.0.1
UserID                  opendkim:opendkim
AuthservID              mail.example.test
Canonicalization        relaxed/relaxed
OversignHeaders         From
KeyTable                {od}/keytable
SigningTable            {od}/signingtable
InternalHosts           {od}/internal-hosts
TestPublicKeys          {od}/public-keys
# the state directory is under /tmp, which the safe-key check (every
# directory up to /) refuses; the keys are throwaway ones, made above
RequireSafeKeys         no
""")
    os.chown(od, user.pw_uid, user.pw_gid)


def configure(state: str) -> None:
    uid, gid = _system_user()
    for sub in ("postfix", "spool", "data", "mail", "log", "bin", "dovecot", "dovecot/run"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    os.chmod(state, 0o755)
    _certificates(state)
    pf = os.path.join(state, "postfix")
    postfix_uid = pwd.getpwnam("postfix").pw_uid
    os.chown(os.path.join(state, "data"), postfix_uid, grp.getgrnam("postfix").gr_gid)
    os.chown(os.path.join(state, "mail"), uid, gid)
    os.makedirs(os.path.join(state, "mail", "example.test"), exist_ok=True)   # homes: Postfix or LMTP first
    os.chown(os.path.join(state, "mail", "example.test"), uid, gid)
    os.chown(os.path.join(state, "log"), postfix_uid, 0)

    vmailbox = ["bounce-me@example.test example.test/bounce-me/Maildir/"]
    for address, (_password, directory) in USERS.items():
        vmailbox.append(f"{address} example.test/{directory}/Maildir/")
    _write(os.path.join(pf, "vmailbox"), "\n".join(vmailbox) + "\n")
    aliases = [f"{name}@example.test alice@example.test" for name in ALIASES]
    aliases.append("team@example.test alice@example.test, bob@example.test")
    _write(os.path.join(pf, "valias"), "\n".join(aliases) + "\n")
    _write(os.path.join(pf, "transport"),
           "bounce-me@example.test rigbounce:\nrelay.example.test rigdefer:\n")
    for code in (67, 75):   # EX_NOUSER bounces, EX_TEMPFAIL defers
        _write(os.path.join(state, "bin", f"exit{code}"), f"#!/bin/sh\ncat >/dev/null\nexit {code}\n", 0o755)

    error = "error:5.7.1 outbound mail is disabled in this test rig"
    _write(os.path.join(pf, "main.cf"), f"""\
compatibility_level = 3.6
queue_directory = {state}/spool
data_directory = {state}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.example.test
mydomain = example.test
myorigin = example.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP Postfix (mail test rig)
maillog_file = {state}/log/postfix.log
maillog_file_prefixes = {state}
virtual_mailbox_domains = example.test
virtual_mailbox_base = {state}/mail
virtual_mailbox_maps = texthash:{pf}/vmailbox
virtual_alias_maps = texthash:{pf}/valias
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_mailbox_limit = 0
recipient_delimiter = +
message_size_limit = 10485760
transport_maps = texthash:{pf}/transport
relay_domains = relay.example.test
fast_flush_domains = $relay_domains
default_transport = {error}
relay_transport = {error}
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_tls_cert_file = {state}/tls/server.crt
smtpd_tls_key_file = {state}/tls/server.key
smtpd_tls_security_level = may
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 2000
smtputf8_enable = yes
strict_smtputf8 = yes
biff = no
""")
    dkim = ""
    if dkim_available():
        _opendkim(state)
        # tempfail, not accept, when the milter is down: a DKIM test then
        # fails with the reason instead of receiving unverified mail
        dkim = (f"127.0.0.1:{DKIM_PORTS['dkim']} inet  n       -       n       -       -       smtpd\n"
                f"  -o smtpd_milters=inet:127.0.0.1:{DKIM_PORTS['milter']}\n"
                f"  -o milter_default_action=tempfail\n")
    smtpd = "inet  n       -       n       -       -       smtpd"
    _write(os.path.join(pf, "master.cf"), f"""\
127.0.0.1:{PORTS['smtp']} {smtpd}
127.0.0.1:{PORTS['plain']} {smtpd}
  -o smtpd_tls_security_level=none
127.0.0.1:{PORTS['submission']} {smtpd}
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
127.0.0.1:{PORTS['submissions']} {smtpd}
  -o smtpd_tls_wrappermode=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
{dkim}pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
rigbounce unix  -       n       n       -       -       pipe flags=q user={SYSTEM_USER} argv={state}/bin/exit67
rigdefer  unix  -       n       n       -       -       pipe flags=q user={SYSTEM_USER} argv={state}/bin/exit75
""")

    dv = os.path.join(state, "dovecot")
    users = []
    for address, (password, directory) in USERS.items():
        users.append(f"{address}:{{PLAIN}}{password}:{uid}:{gid}::{state}/mail/example.test/{directory}::")
    for address, (password, directory) in LMTP_USERS.items():
        users.append(f"{address}:{{PLAIN}}{password}:{uid}:{gid}::{state}/mail/example.test/{directory}::"
                     f"userdb_quota_rule=*:storage={LMTP_QUOTA}B")
    _write(os.path.join(dv, "users"), "\n".join(users) + "\n", 0o640)
    os.chown(os.path.join(dv, "users"), 0, grp.getgrnam("dovecot").gr_gid)
    _write(os.path.join(dv, "dovecot.conf"), f"""\
base_dir = {dv}/run
instance_name = mailrig
protocols = pop3 lmtp
listen = 127.0.0.1
log_path = {state}/log/dovecot.log
ssl = yes
ssl_cert = <{state}/tls/server.crt
ssl_key = <{state}/tls/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256 apop
auth_username_chars =
auth_failure_delay = 0
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dv}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {dv}/users
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {PORTS['pop3']}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {PORTS['pop3s']}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {PORTS['lmtp']}
  }}
}}
postmaster_address = postmaster@example.test
lmtp_rcpt_check_quota = no
protocol lmtp {{
  mail_plugins = $mail_plugins quota
}}
plugin {{
  quota = maildir:User quota
}}
service auth {{
  unix_listener {state}/spool/private/auth {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
""")


def _wait_for_ports(timeout: float = 30, ports: Iterable[int] = PORTS.values()) -> None:
    deadline = time.monotonic() + timeout
    pending = set(ports)
    while pending:
        for port in list(pending):
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    pending.discard(port)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"ports {sorted(pending)} did not open within {timeout} s")
        if pending:
            time.sleep(0.1)


def start(state: str | None = None) -> str:
    """Install if needed, configure a fresh state directory, start both
    daemons, wait until every port answers. Returns the state directory."""
    ok, why = available()
    if not ok:
        raise RuntimeError(why)
    install()
    made = state is None
    state = state or tempfile.mkdtemp(prefix="mailrig-")
    try:
        configure(state)
        pf = os.path.join(state, "postfix")
        # The daemons must not inherit our stdout/stderr: a caller reading them
        # to EOF would wait for as long as the daemons run.
        quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["postfix", "-c", pf, "check"], check=True, **quiet)
        # Dovecot first: it creates the auth socket in Postfix's queue directory
        subprocess.run(["dovecot", "-c", os.path.join(state, "dovecot", "dovecot.conf")], check=True, **quiet)
        dkim_conf = os.path.join(state, "opendkim", "opendkim.conf")
        if os.path.exists(dkim_conf):
            subprocess.run(["opendkim", "-x", dkim_conf], check=True, **quiet)
        subprocess.run(["postfix", "-c", pf, "start"], check=True, **quiet)
        _wait_for_ports(ports=[*PORTS.values(), *(DKIM_PORTS.values() if os.path.exists(dkim_conf) else ())])
    except BaseException:
        # a half-started rig leaves nothing behind: daemons stopped, and the
        # directory removed when we made it
        if made:
            remove(state)
        else:
            stop(state)
        raise
    return state


def _pid(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _wait_gone(pids: list[int], timeout: float = 15) -> None:
    """Wait until none of ``pids`` runs (they are not our children, so
    there is nothing to wait on but their existence)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass
            time.sleep(0.05)


def stop(state: str) -> None:
    """Stop the daemons started in ``state`` (and only those), and wait
    until their master processes have exited."""
    pf = os.path.join(state, "postfix")
    masters = [p for p in (_pid(os.path.join(state, "spool", "pid", "master.pid")),
                           _pid(os.path.join(state, "dovecot", "run", "master.pid")),
                           _pid(os.path.join(state, "opendkim", "opendkim.pid"))) if p]
    if os.path.exists(os.path.join(pf, "main.cf")):
        subprocess.run(["postfix", "-c", pf, "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for pidfile in (os.path.join(state, "dovecot", "run", "master.pid"),
                    os.path.join(state, "opendkim", "opendkim.pid")):
        pid = _pid(pidfile)
        if pid:
            try:
                os.kill(pid, 15)
            except OSError:
                pass
    _wait_gone(masters)


def remove(state: str) -> None:
    """Stop the daemons of ``state`` and delete the state directory."""
    if not os.path.isdir(state):
        return
    stop(state)
    shutil.rmtree(state, ignore_errors=True)
    if os.path.exists(state):   # a straggler wrote into it while it went
        shutil.rmtree(state)


def queue_empty(state: str, timeout: float = 20) -> bool:
    """Wait until Postfix has nothing in its incoming or active queues (all
    mail delivered or bounced). Deferred mail -- the relay.example.test
    domain is deferred on purpose -- does not count."""
    import json
    pf = os.path.join(state, "postfix")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["postqueue", "-c", pf, "-j"], capture_output=True, text=True).stdout
        moving = [e for e in map(json.loads, filter(None, out.splitlines()))
                  if e.get("queue_name") in ("incoming", "active", "maildrop")]
        if not moving:
            return True
        time.sleep(0.1)
    return False


def purge_deferred(state: str) -> None:
    """Delete every deferred message (the ETRN test parks one)."""
    subprocess.run(["postsuper", "-c", os.path.join(state, "postfix"), "-d", "ALL", "deferred"],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    if sys.argv[1:] == ["install"]:
        install()
    elif len(sys.argv) >= 2 and sys.argv[1] == "start":
        print(start(sys.argv[2] if len(sys.argv) > 2 else None))
    elif len(sys.argv) == 3 and sys.argv[1] == "stop":
        stop(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "remove":
        remove(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(64)
