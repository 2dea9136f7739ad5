"""DKIM signing (dkimpy) of finished messages, when a key is configured.

`h=` names the headers mailbox providers look at, both list headers included: dkimpy's default list
leaves out `List-Unsubscribe-Post`, and RFC 8058 asks for it to be signed. `From` is signed twice
(oversigned) so a second From cannot be added without breaking the signature.
"""

from __future__ import annotations

from pathlib import Path

import dkim
import dkim.crypto

from digest.config import ConfigError, Settings
from digest.mail.message import sender_domain

SIGNED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Id", "List-Unsubscribe",
    "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
)


class DkimSigner:
    def __init__(self, selector: str, domain: str, private_key: bytes):
        try:
            dkim.crypto.parse_pem_private_key(private_key)
        except (dkim.crypto.UnparsableKeyError, ValueError, IndexError) as err:
            raise ConfigError(f"mail.dkim_key_file: not a PEM RSA private key ({err})") from None
        self.selector, self.domain, self.key = selector.encode(), domain.encode(), private_key

    def sign(self, data: bytes) -> bytes:
        """The message with a DKIM-Signature header in front (relaxed/relaxed canonicalization)."""
        present = {line.split(b":", 1)[0].strip().lower() for line in _header_lines(data)}
        names = [h.encode() for h in SIGNED_HEADERS if h.lower().encode() in present] + [b"From"]
        signature = dkim.sign(data, self.selector, self.domain, self.key, include_headers=names,
                              canonicalize=(b"relaxed", b"relaxed"))
        return signature + data


def _header_lines(data: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return [line for line in head.splitlines() if line and line[:1] not in (b" ", b"\t")]


def from_settings(settings: Settings) -> DkimSigner | None:
    """The configured signer, or None; a missing key file or selector is refused with the key's name."""
    mail = settings.mail
    if not mail.dkim_key_file:
        return None
    if not mail.dkim_selector:
        raise ConfigError("mail.dkim_selector: required when mail.dkim_key_file is set")
    path = Path(mail.dkim_key_file).expanduser()
    try:
        key = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"mail.dkim_key_file: cannot read {path}: {err.strerror}") from None
    return DkimSigner(mail.dkim_selector, mail.dkim_domain or sender_domain(mail.from_address), key)
