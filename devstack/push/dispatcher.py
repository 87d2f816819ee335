"""Deliver one pull subscription of the emulator to its endpoint, as Pub/Sub push does.

For each :class:`~devstack.push.routes.Route`, a :class:`SubscriptionWorker`:

- polls (short pulls, at once again while messages come; see :class:`Activity` for how often when
  idle) and keeps up to
  ``route.concurrency`` + 100 messages leased; ``route.concurrency`` threads deliver them, so no more
  than that many requests are ever in flight for the subscription;
- POSTs each message's push body with the ack deadline as the request timeout, while a lease
  thread keeps every leased message's lease extended (no second delivery while one waits or runs);
- acks on 2xx (in batches, every 20 ms); otherwise (non-2xx, timeout, connection refused:
  function down) the attempt counts, and the message is nacked with
  ``modifyAckDeadline(backoff)``: the emulator redelivers it after the backoff with
  ``deliveryAttempt`` + 1;
- after the failed attempt number ``max_delivery_attempts``, publishes the message to the
  dead-letter topic with the ``CloudPubSubDeadLetterSource*`` attributes and acks it.

Attempt numbers come from the emulator (``deliveryAttempt``, set because every subscription
has a dead-letter policy), so they survive a restart of the dispatcher. Each outcome is one
JSON line on stderr (``logs/push.log``); message data is never logged.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devstack.push import deliver
from devstack.push.emulator import Emulator, EmulatorError
from devstack.push.routes import Route

LEASE_EVERY_S = 5.0  # how often running deliveries get their lease extended
LEASE_S = 20  # … by this much (more than LEASE_EVERY_S, so a lease never lapses in between)
RETRY_EMULATOR_S = 1.0  # wait after a failed call on the emulator
ACK_EVERY_S = 0.02  # acks are sent in batches this often
PREFETCH = 100  # messages leased beyond the deliveries running (client libraries' flow control: 1000)
IDLE_POLL_MIN_S = 0.02  # wait after an empty pull; grows by IDLE_POLL_GROWTH up to a cap:
IDLE_POLL_BUSY_MAX_S = 0.25  # the cap while anything happened in the dispatcher in the last QUIET_AFTER_S
IDLE_POLL_MAX_S = 1.0  # the cap once the whole dispatcher has been quiet that long
QUIET_AFTER_S = 30.0
IDLE_POLL_GROWTH = 1.5


_LOG_LOCK = threading.Lock()


def log_event(**fields: Any) -> None:
    """One JSON line on stderr (the component's log), written whole: delivery threads log at
    once, and ``print`` writes the text and its newline apart, so lines could interleave."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **fields}
    with _LOG_LOCK:
        sys.stderr.write(json.dumps(line) + "\n")
        sys.stderr.flush()


def dead_letter_message(received: dict[str, Any], subscription: str, project: str, attempts: int) -> dict[str, Any]:
    """The message as Pub/Sub forwards it to a dead-letter topic (attributes as the service sets)."""
    msg = received.get("message") or {}
    attributes = dict(msg.get("attributes") or {})
    attributes.update(
        {
            "CloudPubSubDeadLetterSourceDeliveryCount": str(attempts),
            "CloudPubSubDeadLetterSourceSubscription": subscription,
            "CloudPubSubDeadLetterSourceSubscriptionProject": project,
            "CloudPubSubDeadLetterSourceTopicPublishTime": msg.get("publishTime", ""),
        }
    )
    out: dict[str, Any] = {"data": msg.get("data", ""), "attributes": attributes}
    if msg.get("orderingKey"):
        out["orderingKey"] = msg["orderingKey"]
    return out


class Activity:
    """Wakes every idle pull loop of one dispatcher when something happens anywhere in it.

    Something is a message pulled or a delivery finished: a function publishes the next hop's
    message while it runs, so the next subscription is pulled at once instead of at its idle
    interval. It also lets a dispatcher quiet for QUIET_AFTER_S poll only every IDLE_POLL_MAX_S:
    a stack has ~34 subscriptions, and polling each every 250 ms cost an idle stack two thirds of
    a core (the dispatcher and the Java emulator together), which slowed every test sharing the
    machine. A message published from outside (a request, a GCS or audit-log event) then waits
    for one poll interval: at most 250 ms while the stack is in use, at most 1 s after a quiet
    spell.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.generation = 0
        self.last_s = time.monotonic()  # when the last bump came (start-up counts as one)

    def bump(self) -> None:
        with self._changed:
            self.generation += 1
            self.last_s = time.monotonic()
            self._changed.notify_all()

    def poll_cap_s(self) -> float:
        """The longest wait between two empty pulls of one subscription, now."""
        quiet = time.monotonic() - self.last_s >= QUIET_AFTER_S
        return IDLE_POLL_MAX_S if quiet else IDLE_POLL_BUSY_MAX_S

    def wait(self, seen: int, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for activity after generation ``seen``; whether there was."""
        with self._changed:
            return self._changed.wait_for(lambda: self.generation != seen, timeout=timeout_s)


class SubscriptionWorker:
    """Pull loop, deliveries, leases and acks of one subscription."""

    def __init__(self, emulator: Emulator, route: Route, stop: threading.Event, activity: Activity) -> None:
        self.emulator = emulator
        self.route = route
        self.stop = stop
        self.activity = activity
        self._ack_due = threading.Event()  # set (under _free) when _acks has something to send
        self._free = threading.Condition()
        self._lease_lock = threading.Lock()  # a lease extension never overwrites a nack's backoff
        self.leased: dict[str, str] = {}  # ackId → messageId: pulled, not yet settled (waiting or delivering)
        self._acks: list[str] = []  # settled with a 2xx, to acknowledge in the next batch
        self.delivering = 0
        self.max_delivering = 0  # the most concurrent deliveries seen (GET /stats)
        self.acked = 0
        # Deliveries run on `concurrency` threads; up to as many more messages wait, leased, so
        # a freed slot starts the next delivery without waiting for a pull.
        self.lease_limit = route.concurrency + PREFETCH
        self._pool = ThreadPoolExecutor(max_workers=route.concurrency, thread_name_prefix=route.subscription)

    def start(self) -> None:
        for loop in (self._pull_loop, self._lease_loop, self._ack_loop):
            threading.Thread(target=loop, name=f"{loop.__name__}-{self.route.subscription}", daemon=True).start()

    def stats(self) -> dict[str, Any]:
        with self._free:
            return {
                "concurrency": self.route.concurrency,
                "delivering": self.delivering,
                "max_delivering": self.max_delivering,
                "leased": len(self.leased),
                "acked": self.acked,
            }

    def _wait_for_room(self) -> int:
        with self._free:
            while len(self.leased) >= self.lease_limit and not self.stop.is_set():
                self._free.wait(timeout=1.0)
            return self.lease_limit - len(self.leased)

    def _pull_loop(self) -> None:
        idle_s = IDLE_POLL_MIN_S
        while not self.stop.is_set():
            room = self._wait_for_room()
            if room <= 0:
                continue
            seen, pulled_at = self.activity.generation, time.monotonic()
            try:
                received = self.emulator.pull(self.route.subscription, room)
            except EmulatorError as exc:
                log_event(subscription=self.route.subscription, action="pull-failed", note=str(exc))
                self.stop.wait(RETRY_EMULATOR_S)
                continue
            if not received:  # poll again soon; less often the longer nothing comes here or anywhere
                if self.activity.wait(seen, idle_s):
                    idle_s = IDLE_POLL_MIN_S
                    # never more often than every IDLE_POLL_MIN_S, however busy the others are
                    self.stop.wait(max(0.0, pulled_at + IDLE_POLL_MIN_S - time.monotonic()))
                else:
                    idle_s = min(self.activity.poll_cap_s(), idle_s * IDLE_POLL_GROWTH)
                continue
            idle_s = IDLE_POLL_MIN_S
            self.activity.bump()
            with self._free:
                for item in received:
                    self.leased[item["ackId"]] = item.get("message", {}).get("messageId", "")
            for item in received:
                self._pool.submit(self._deliver, item)

    def _ack_loop(self) -> None:
        """Acknowledge in batches, as the client libraries do (a lost ack only means a redelivery).

        Asleep until there is something to send (34 loops waking every 20 ms cost an idle stack
        ~1,700 thread wake-ups a second); then ACK_EVERY_S more, to gather the batch."""
        while not self.stop.is_set():
            if not self._ack_due.wait(timeout=1.0) or self.stop.wait(ACK_EVERY_S):
                continue
            with self._free:
                batch, self._acks = self._acks, []
                self._ack_due.clear()
            if not batch:
                continue
            try:
                self.emulator.ack(self.route.subscription, batch)
            except EmulatorError as exc:
                log_event(subscription=self.route.subscription, action="ack-failed", note=str(exc))

    def _lease_loop(self) -> None:
        while not self.stop.wait(LEASE_EVERY_S):
            with self._lease_lock:
                with self._free:
                    ack_ids = list(self.leased)
                if not ack_ids:
                    continue
                try:
                    self.emulator.modify_ack_deadline(self.route.subscription, ack_ids, LEASE_S)
                except EmulatorError as exc:
                    log_event(subscription=self.route.subscription, action="lease-failed", note=str(exc))

    def _deliver(self, item: dict[str, Any]) -> None:
        route, ack_id = self.route, item["ackId"]
        attempt = int(item.get("deliveryAttempt") or 1)
        message_id = item.get("message", {}).get("messageId", "")
        with self._free:
            self.delivering += 1
            self.max_delivering = max(self.max_delivering, self.delivering)
        try:
            body = deliver.push_body(self.emulator.project, route.subscription, item)
            outcome = deliver.post(route.endpoint, body, timeout_s=route.ack_deadline_s)
            action = self._settle(item, attempt, outcome)
            log_event(
                subscription=route.subscription,
                message_id=message_id,
                attempt=attempt,
                status=outcome.status,
                action=action,
                note=outcome.note,
            )
        except Exception as exc:  # noqa: BLE001 - a delivery thread must never die silently
            log_event(subscription=route.subscription, message_id=message_id, action="error", note=repr(exc))
        finally:
            with self._free:
                self.delivering -= 1
                self.leased.pop(ack_id, None)
                self._free.notify_all()
            self.activity.bump()  # the function may have published the next hop's message

    def _settle(self, item: dict[str, Any], attempt: int, outcome: deliver.Outcome) -> str:
        """Ack, nack with backoff, or dead-letter; returns what was done (for the log)."""
        route, ack_id = self.route, item["ackId"]
        if outcome.acked:
            with self._free:
                self.leased.pop(ack_id, None)
                self._acks.append(ack_id)
                self._ack_due.set()
                self.acked += 1
            return "ack"
        if attempt >= route.max_delivery_attempts:
            dead = dead_letter_message(item, route.subscription, self.emulator.project, attempt)
            self.emulator.publish(route.dead_letter_topic, dead)
            self.emulator.ack(route.subscription, [ack_id])
            return "dead-letter"
        wait_s = route.backoff_s(attempt)
        with self._lease_lock:
            with self._free:
                self.leased.pop(ack_id, None)  # the lease loop must not extend the backoff away
            self.emulator.modify_ack_deadline(route.subscription, [ack_id], wait_s)
        return f"retry in {wait_s} s"


def start_workers(emulator: Emulator, routes: list[Route], stop: threading.Event) -> list[SubscriptionWorker]:
    """One started worker per route, woken together by one :class:`Activity`."""
    activity = Activity()
    workers = [SubscriptionWorker(emulator, route, stop, activity) for route in routes]
    for worker in workers:
        worker.start()
    return workers
