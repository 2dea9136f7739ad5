"""A DNS server on a loopback UDP port for the programs the tests run offline (rspamd): it answers from a
fixed table of records and says "no such name" (NXDOMAIN) to everything else, so a block list reads
"not listed" at once instead of timing out. Messages are read and written with dnspython."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


def txt(value: str) -> str:
    """A TXT record's text in zone-file form: quoted strings of at most 255 characters (a DKIM key is
    longer)."""
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


class DnsStub:
    """`with DnsStub({("name", "TXT"): ['"v=spf1 -all"'], ...}) as dns:` serves on 127.0.0.1:`dns.port`."""

    def __init__(self, records: dict[tuple[str, str], list[str]]):
        self.records = {
            (name.rstrip(".").lower(), kind.upper()): values for (name, kind), values in records.items()
        }
        self.names = {name for name, _ in self.records}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="dns-stub", daemon=True)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        for q in query.question:
            name = q.name.to_text().rstrip(".").lower()
            values = self.records.get((name, dns.rdatatype.to_text(q.rdtype)))
            if values:
                reply.answer.append(dns.rrset.from_text_list(q.name, 300, "IN", q.rdtype, values))
            elif name not in self.names:
                reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply = self.answer(dns.message.from_wire(data))
            except Exception:  # noqa: BLE001 - a malformed query gets no answer, as on a real server
                continue
            self.sock.sendto(reply.to_wire(max_size=4096), peer)

    def __enter__(self) -> DnsStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()
