"""smtpsend: send MIME messages built with mimecompose over SMTP (tcllib ``smtp`` style)."""

__version__ = "0.1.0"
