"""The public surface: complete, sorted __all__, and the names users rely on."""

import inspect

import mimecompose
import smtpsend


def test_all_sorted_and_complete():
    for module in (mimecompose, smtpsend):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), name
        public = {n for n, v in vars(module).items() if not n.startswith("_")
                  and not inspect.ismodule(v)}
        assert public - {"__version__"} <= set(module.__all__) | {"testing", "strategies"}


def test_sendmessage_signature():
    params = inspect.signature(smtpsend.sendmessage).parameters
    for name in ("servers", "ports", "client", "originator", "recipients", "header", "atleastone", "queue",
                 "usetls", "tlsimport", "tlspolicy", "ssl_context", "username", "password", "maxsecs",
                 "timeout", "debug"):
        assert name in params, name


def test_error_hierarchy():
    assert issubclass(smtpsend.UsageError, ValueError)
    assert issubclass(mimecompose.MimeError, ValueError)
    assert issubclass(smtpsend.TransportError, ConnectionError)
    assert issubclass(smtpsend.Timeout, TimeoutError)
    for name in ("SenderRefused", "RecipientsRefused", "DataRefused", "MessageTooBig", "AllServersFailed",
                 "NotSupported", "DeliveryUncertain", "AuthenticationError", "TLSError"):
        error = getattr(smtpsend, name)
        assert issubclass(error, smtpsend.SMTPError)
        assert not issubclass(error, OSError) or issubclass(error, smtpsend.TransportError)
