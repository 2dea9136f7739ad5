"""The channel pool: the sending threads of one run, each with its own channels (its own SMTP
connection, its own HTTP client), fed by the claiming thread through a bounded queue.

Threads, because a sender mostly waits on its peer; the rendering stays in the claiming thread. A
thread sends an item once the rate limiter lets it and its lease holds (digest.delivery.lease), and
has its outcome recorded (digest.delivery.recording) before its next item is delivered: on SQLite
before it takes the next one; on PostgreSQL the outcome commits while the channel sends the next
item all but its last step (`Channel.send_after`: over SMTP, the dot that ends the message), so a
crash still sends at most one message per connection twice. `ChannelFailed`
stops the run: what is not sent yet is given back at its end. `ChannelRefused` leaves that delivery
held, to be given back unspent at the end, and the run goes on until the circuit breaker
(digest.delivery.breaker) stops it. An exception from a channel means the outcome is unknown: that
delivery is left to its lease, and the run stops.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from digest.delivery.breaker import Breaker
from digest.delivery.channel import ChannelFailed, ChannelRefused, Outgoing
from digest.delivery.channels import Channels
from digest.delivery.lease import Lease
from digest.delivery.recording import Recorder
from digest.mail.ratelimit import RateLimiter

log = logging.getLogger("digest.sender")

STOPPING = "the sender is stopping"


class Pool:
    """`len(channels)` sending threads; `stop` (when given) keeps any new message from starting."""

    def __init__(self, channels: Sequence[Channels], recorder: Recorder, lease: Lease, limiter: RateLimiter,
                 queue_size: int, stop: threading.Event | None = None, breaker: Breaker | None = None):
        self.recorder, self.lease, self.limiter, self.stop_event = recorder, lease, limiter, stop
        self.breaker = breaker or Breaker()
        self.queue: queue.Queue[Outgoing | None] = queue.Queue(maxsize=queue_size)
        self.stopped = threading.Event()
        self.uncertain: set[int] = set()  # may have been sent, outcome unrecorded: left to its lease
        self.refused: dict[int, str] = {}  # refused by the relay for its own reasons: given back at the end
        self._in_flight: set[int] = set()  # being sent now (its outcome not recorded yet)
        self._flight_lock = threading.Lock()
        self._local = threading.local()  # each thread's outcome in flight: (delivery id, the call that waits)
        self._threads = [threading.Thread(target=self._work, args=(c,), name=f"digest-send-{i}", daemon=True)
                         for i, c in enumerate(channels)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, error: str) -> None:
        """Stop the run: no more items are taken; `error` is the report's."""
        with self.recorder.lock:
            if not self.stopped.is_set():
                self.recorder.report.errors.append(error)
                self.stopped.set()

    def unsure(self) -> set[int]:
        """What must be left to its lease if the process ends now: in flight, or sent with no outcome."""
        with self._flight_lock:
            return self._in_flight | self.uncertain

    def put(self, o: Outgoing) -> bool:
        """Hand an item to the threads; False once the run has stopped."""
        while not self.stopped.is_set():
            try:
                self.queue.put(o, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def join(self) -> None:
        """Let every thread finish what it has, and end."""
        for _ in self._threads:
            self.queue.put(None)
        for t in self._threads:
            t.join()

    def _work(self, channels: Channels) -> None:
        try:
            while (o := self.queue.get()) is not None:
                if self.stopped.is_set():
                    continue  # given back at the end of the run
                try:
                    self._deliver(channels, o)
                except Exception as err:  # e.g. the database went away: sent or not, its lease decides
                    log.exception("sending stopped at delivery=%s", o.delivery_id)
                    with self.recorder.lock:
                        self.uncertain.add(o.delivery_id)
                    self.stop(f"{type(err).__name__}: {err}")
            self._settle_last()
        except BaseException:
            self.stop("a sending thread died")  # the claiming thread must not wait for it
            raise
        finally:
            channels.close()
            self.recorder.close_thread()

    def _settle_last(self) -> None:
        try:
            self._settle()
        except Exception as err:  # its delivery is left to its lease
            log.exception("recording the last outcome failed")
            self.stop(f"{type(err).__name__}: {err}")

    def _deliver(self, channels: Channels, o: Outgoing) -> None:
        with self._flight_lock:
            self._in_flight.add(o.delivery_id)
        try:
            self._send(channels, o)
        finally:
            if getattr(self._local, "pending", None) is None or self._local.pending[0] != o.delivery_id:
                with self._flight_lock:
                    self._in_flight.discard(o.delivery_id)

    def _settle(self) -> None:
        """Wait for this thread's outcome in flight, if there is one (recorded without waiting: the
        recorder's `later`). Its delivery stays in flight (left to its lease) until it is recorded, and
        is unsure for good if recording it failed."""
        if (pending := getattr(self._local, "pending", None)) is None:
            return
        self._local.pending = None
        delivery_id, wait = pending
        try:
            wait()
        except BaseException:
            with self.recorder.lock:
                self.uncertain.add(delivery_id)
            raise
        finally:
            with self._flight_lock:
                self._in_flight.discard(delivery_id)

    def _send(self, channels: Channels, o: Outgoing) -> None:
        channel = channels.get(o.channel)
        self.limiter.acquire()
        if not self.lease.still_held(o):
            log.warning("delivery=%s was taken over by another worker; not sending it", o.delivery_id)
            return
        if self.stop_event is not None and self.stop_event.is_set():
            self.stop(STOPPING)  # the message in flight finished; this one and the rest are given back
            return
        # the previous outcome must be on the ledger before this message is complete: the channel waits
        # for it at the last moment (email over SMTP: before the dot that ends the message)
        result = channel.send_after(o, self._settle)
        self._settle()
        if isinstance(result, ChannelFailed):
            self.stop(result.error)  # not sent: given back with the rest
            return
        tripped = self.breaker.note(o.channel, result)
        if isinstance(result, ChannelRefused):  # still held: given back unspent at the end of the run
            log.warning("message refused by the relay delivery=%s via=%s (given back, not a bounce): %s",
                        o.delivery_id, channel.label, result.error)
            with self.recorder.lock:
                self.refused[o.delivery_id] = result.error
        elif (wait := self.recorder.later(o, result, channel.label)) is not None:
            self._local.pending = (o.delivery_id, wait)
        if tripped is not None:
            log.error("circuit breaker: %s", tripped)
            self.stop(tripped)
