"""How far long work is, one helper for every command: a progress bar on a terminal (click's), and
otherwise (cron, logs) a line on stderr every few seconds. Use cases report with a plain callback,
`progress(n)`: n more items done; `start(total)` when the total is known (else a running count)."""

from __future__ import annotations

import sys
import time

import click

EVERY = 5.0  # seconds between two lines when stderr is not a terminal


class Progress:
    def __init__(self, label: str, *, enabled: bool = True, total: int | None = None,
                 terminal: bool | None = None, every: float | None = None) -> None:
        self.label, self.enabled, self.every = label, enabled, EVERY if every is None else every
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.done, self.total, self.bar, self.finished = 0, None, None, False
        self.started = self.last = time.monotonic()
        if total is not None:
            self.start(total)

    def start(self, total: int) -> None:
        """The total is known now: on a terminal the bar appears."""
        self.total = total
        if self.enabled and self.terminal and total > 0 and self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
            if self.done:
                self.bar.update(self.done)

    def __call__(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.terminal:  # no total: a running count on one line
            click.echo(f"\r{self.label}: {self.done:,}", nl=False, err=True)
        elif now - self.last >= self.every:
            self.last = now
            click.echo(self.line(now), err=True)

    update = __call__

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.started
        of = f" of {self.total:,}" if self.total else ""
        rate = f", {self.done / elapsed:,.0f}/s" if elapsed > 0 else ""
        return f"{self.label}: {self.done:,}{of} ({elapsed:.0f} s{rate})"

    def finish(self, *exc) -> None:
        """End the bar or the count's line (once); without a terminal, a last line with the count."""
        if self.bar is not None:
            self.bar.__exit__(*(exc or (None, None, None)))
            self.bar = None
        elif self.enabled and self.done and not self.finished:
            click.echo("" if self.terminal else self.line(), err=True)
        self.finished = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.finish(*exc)


class Steps:
    """One `Progress` per step of a use case (`progress(step)` returns the step's callback), each
    finished when the next begins; labels by step name."""

    def __init__(self, labels: dict[str, str], *, enabled: bool = True, terminal: bool | None = None) -> None:
        self.labels, self.enabled, self.terminal = labels, enabled, terminal
        self.current: Progress | None = None

    def __call__(self, step: str) -> Progress:
        self.close()
        self.current = Progress(self.labels.get(step, step), enabled=self.enabled, terminal=self.terminal)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.finish()
            self.current = None

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


INGEST_STEPS = {"ingest": "reading listings", "terms": "analysing terms", "embedding": "embedding papers"}
