"""TLS failures no retry can mend, told apart from those worth another attempt."""

from __future__ import annotations

import requests

# what an SSLError's text says when no retry can help: the certificate does not verify (`verify`,
# `ca_bundle`), or the port speaks plain http (QA: https to an http port was retried 6 times)
_TLS_FOR_GOOD = {
    "CERTIFICATE_VERIFY_FAILED": "the server's TLS certificate does not verify (set `ca_bundle` "
    "to the hospital's CA file if it uses its own)",
    "WRONG_VERSION_NUMBER": "no TLS at that port (an http:// server named https://?)",
}


def tls_refused(e: Exception) -> str | None:
    """Why a TLS failure is for good, or None for one worth another attempt (a handshake cut
    off). Only the reason is read of the error's text, which also quotes the URL."""
    if not isinstance(e, requests.exceptions.SSLError):
        return None
    text = str(e)
    return next((why for key, why in _TLS_FOR_GOOD.items() if key in text), None)
