"""`digest demo` on a fresh folder: no network, no config, a real SMTP round trip."""

import email
import email.policy
import subprocess
import sys

from digest.demo import DEMO_SUBSCRIBERS


def test_demo_leaves_one_valid_digest_per_subscriber_matching_their_topics(tmp_path):
    out = subprocess.run([sys.executable, "-m", "digest.cli", "demo", "--dir", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    emls = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert len(emls) == len(DEMO_SUBSCRIBERS)
    for (address, _name, topics, _tz) in DEMO_SUBSCRIBERS:
        path = next(p for p in emls if address.replace("@", "_") in p.name)
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert msg["To"].addresses[0].addr_spec == address
        text = msg.get_body(("plain",)).get_content()
        # the first three picks each say which of this subscriber's topics they matched
        picks = text.split("\n1. ", 1)[1].split("\n4. ", 1)[0]
        assert sum(f"“{t}”" in picks for t in topics) >= 1
        assert picks.count("Matches “") >= 3
        assert path.with_suffix(".html").exists()
    assert "Open the HTML digests" in out.stdout
    # never the user's own database: nothing written outside the demo folder
    assert not (tmp_path / "digest.store.db").exists() and not (tmp_path / "digest.db").exists()
