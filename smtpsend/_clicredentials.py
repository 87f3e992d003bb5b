"""The ``smtpsend`` command's credentials: the user name, and each server's
password (Credentials) from a password command, the configuration, the
environment or ~/.netrc; the shell commands that print a password or an
OAuth 2 token (run_password_command, token_command).

Failures are CLIError: 77 for a command that fails or prints something
that is not one line of UTF-8 (never showing it), 64 for a command without
a user name.
"""

from __future__ import annotations

import argparse
import netrc
import os
import subprocess
from typing import Callable, Optional

from ._cliconfig import Account
from ._cliexit import EX_NOPERM, EX_USAGE, CLIError, Warn

PASSWORD_TIMEOUT = 120.0         # seconds a password command may take (a person may be typing a passphrase)


def run_password_command(command: str, timeout: float, what: str, *, env: Optional[dict[str, str]] = None,
                         noun: str = "password") -> str:
    """Run ``command`` through the shell (stdin empty, stderr the user's,
    ``env`` the environment if given) and return its output less one
    trailing LF or CRLF. Raises CLIError (77) when it fails, takes longer
    than ``timeout`` seconds, prints nothing, several lines, or text that
    is not UTF-8; the message never shows the output (the ``noun``, a
    password or a token)."""
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env)
    except OSError as exc:
        raise CLIError(f"cannot run the {what}: {exc.strerror}", EX_NOPERM) from None
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CLIError(f"the {what} did not finish within {timeout:g} seconds (set --password-timeout, "
                       "or password_timeout in the configuration file)", EX_NOPERM) from None
    finally:
        if proc.returncode is None:         # timed out or interrupted: do not leave it running
            proc.kill()
            if proc.stdout:
                proc.stdout.close()
            proc.wait()
    if proc.returncode != 0:
        raise CLIError(f"the {what} failed (exit status {proc.returncode})", EX_NOPERM)
    if output.endswith(b"\r\n"):
        output = output[:-2]
    elif output.endswith(b"\n"):
        output = output[:-1]
    if not output:
        raise CLIError(f"the {what} printed no {noun}", EX_NOPERM)
    if any(c in output for c in b"\r\n\0"):
        raise CLIError(f"the {what} printed more than one line: it must print only the {noun} "
                       "(e.g. pass show NAME | head -n 1)", EX_NOPERM)
    try:
        return output.decode("utf-8")
    except UnicodeDecodeError:
        raise CLIError(f"the {what} printed a {noun} that is not UTF-8", EX_NOPERM) from None


def token_command(command: str, timeout: float) -> Callable[[str, bool], str]:
    """``--token-command``: a ``token=`` callable that runs ``command``
    through the shell with $SMTPSEND_TOKEN_USER (the user name) and
    $SMTPSEND_TOKEN_REFRESH ("1" when the server rejected the last token
    and a new one is wanted, else "0") and returns its one line of output.
    Its failures are CLIError (see run_password_command); smtpsend reports
    them as an AuthenticationError caused by it."""
    def token(username: str, refresh: bool) -> str:
        env = dict(os.environ, SMTPSEND_TOKEN_USER=username, SMTPSEND_TOKEN_REFRESH="1" if refresh else "0")
        return run_password_command(command, timeout, "token command", env=env, noun="token")
    return token


class Credentials:
    """The user name, and a password for each server: one given for all
    servers (--password-command, $SMTPSEND_PASSWORD, passwordeval, password),
    else the ~/.netrc entry of that server's own host. A password looked up
    for one host is never sent to another."""

    def __init__(self, args: argparse.Namespace, account: Account, warn: Warn, urls_name_users: bool = False
                 ) -> None:
        # $SMTPSEND_USER and $SMTPSEND_PASSWORD are in the account (apply_environment)
        user = args.user or (account.user if account.auth is not False else None)
        if args.password_command and not user and not urls_name_users:
            raise CLIError("--password-command needs a user name: --user NAME, or user in the configuration file",
                           EX_USAGE)
        if args.token_command and not user and not urls_name_users:
            raise CLIError("--token-command needs a user name: --user NAME, or user in the configuration file",
                           EX_USAGE)
        self.user: Optional[str] = user or None
        self._warn = warn
        # --token-command: run when a connection needs the token (once per connection, again to refresh)
        self.token: Optional[Callable[[str, bool], str]] = None
        if args.token_command:
            self.token = token_command(args.token_command,
                                       args.password_timeout or account.password_timeout or PASSWORD_TIMEOUT)
        self._common: Optional[str] = None
        self._netrc: Optional[dict[str, tuple[str, Optional[str]]]] = None
        if self.user is None and not urls_name_users:   # a server URL may name the user
            return
        timeout = args.password_timeout or account.password_timeout or PASSWORD_TIMEOUT
        if args.password_command:
            self._common = run_password_command(args.password_command, timeout, "password command")
        elif account.passwordeval:
            self._common = run_password_command(account.passwordeval, timeout, "passwordeval command")
        elif account.password is not None:
            self._common = account.password
        if self._common is not None:
            _check_password(self._common)

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=<redacted>)"

    def _netrc_entries(self) -> dict[str, tuple[str, Optional[str]]]:
        if self._netrc is None:
            self._netrc = {}
            try:
                found = netrc.netrc()
            except FileNotFoundError:
                return self._netrc
            except (netrc.NetrcParseError, OSError) as exc:
                line = getattr(exc, "lineno", None)
                self._warn(f"~/.netrc not used: it cannot be parsed{f' (line {line})' if line else ''}, "
                           "or others can read it")
                return self._netrc
            # only "machine" entries: a "default" entry would hand the password to any server
            self._netrc = {host.lower(): (login, password) for host, (login, _, password) in found.hosts.items()}
        return self._netrc

    def for_server(self, host: str, user: Optional[str] = None) -> tuple[Optional[str], Optional[str]]:
        """(user, password) for ``host`` -- ``user`` (a server URL's) or
        the user name; password None when there is none."""
        user = user or self.user
        if user is None:
            return None, None
        if self._common is not None:
            return user, self._common
        login, password = self._netrc_entries().get(host.lower(), (None, None))
        if login == user and password is not None:
            _check_password(password)
            return user, password
        return user, None


def _check_password(password: str) -> None:
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise CLIError("the password is not valid UTF-8 text", EX_NOPERM) from None
