"""The one reader of inbound mailboxes (bounce reports, mailto unsubscribes): a Maildir and/or an mbox.

What counts as a Maildir: a folder with both `new/` and `cur/`. Python's `mailbox.Maildir` lists the
messages of both, and marking a message seen moves it into `cur/`, so a folder missing either is not
one we can read and mark; it is refused with one line naming the path rather than read half-way.
An mbox is an existing file. Both errors are `ValueError`s worded for the command line.
"""

from __future__ import annotations

import contextlib
import itertools
import mailbox
from collections.abc import Iterator
from pathlib import Path


def maildir_path(path: str | Path) -> Path:
    """`path` if it is a Maildir (has new/ and cur/), else ValueError '<path>: not a Maildir ...'."""
    path = Path(path)
    if not (path / "new").is_dir() or not (path / "cur").is_dir():
        raise ValueError(f"{path}: not a Maildir (needs new/ and cur/)")
    return path


def mbox_path(path: str | Path) -> Path:
    """`path` if it is an existing file, else ValueError '<path>: no such mbox file'."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such mbox file")
    return path


def maildir_messages(path: str | Path, *, mark_seen: bool = False) -> Iterator[bytes]:
    """The raw messages of a Maildir (new/ and cur/); the path is checked at the call, before any reading.

    mark_seen=False: every message, the folder left as it is. mark_seen=True: only messages without
    the seen flag ('S'), each moved to cur/ and flagged seen once handled, that is when the caller
    asks for the next message; a message whose handling raised (or that the caller stopped at) stays
    unseen, so the next run reads it again.
    """
    return _maildir(mailbox.Maildir(maildir_path(path), factory=None, create=False), mark_seen)


def mbox_messages(path: str | Path) -> Iterator[bytes]:
    """The raw messages of an mbox file, only read (never changed or locked); the path is checked at
    the call."""
    return _mbox(mbox_path(path))


def messages(maildir: str | Path | None = None, mbox: str | Path | None = None, *,
             mark_seen: bool = False) -> Iterator[bytes]:
    """The raw messages of a Maildir, then of an mbox, either or both; see `maildir_messages`.

    Both paths are checked at the call: a bad one raises before anything is read.
    """
    parts = [maildir_messages(maildir, mark_seen=mark_seen)] if maildir is not None else []
    if mbox is not None:
        parts.append(mbox_messages(mbox))
    return itertools.chain.from_iterable(parts)


def _maildir(box: mailbox.Maildir, mark_seen: bool) -> Iterator[bytes]:
    for key in list(box.iterkeys()):
        if not mark_seen:
            yield box.get_bytes(key)
            continue
        msg = box.get_message(key)
        if "S" in msg.get_flags():
            continue
        yield box.get_bytes(key)
        msg.set_subdir("cur")
        msg.add_flag("S")
        box[key] = msg


def _mbox(path: Path) -> Iterator[bytes]:
    with contextlib.closing(mailbox.mbox(path, factory=None, create=False)) as box:
        for key in box.iterkeys():
            yield box.get_bytes(key)
