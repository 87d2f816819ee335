"""Deliver one pull subscription of the emulator to its endpoint, as Pub/Sub push does.

For each :class:`~devstack.push.routes.Route`, a :class:`SubscriptionWorker`:

- pulls (short pulls, at once again while messages come) when its topic's **doorbell** rings,
  when a message it nacked is due again, and otherwise only every IDLE_POLL_MAX_S; keeps up to
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

The doorbell is a push subscription of the emulator's own on each routed topic
(``doorbell-<topic>``, made by ``devstack.stack``), pushing to this process's
``POST /doorbell/<topic>``: the emulator pushes within ~20-70 ms of a publish, and an idle stack
no longer polls its ~34 subscriptions a few times a second (that polling, the dispatcher's and
the Java emulator's CPU together, cost an idle stack ~20 % of a core and a busy one far more:
every finished delivery woke every subscription for a pull). The emulator's push is used only as
the wake-up: it cannot give the cloud's attempt counts, backoff or concurrency, which the
pulled subscription's delivery below keeps.

Attempt numbers come from the emulator (``deliveryAttempt``, set because every subscription
has a dead-letter policy), so they survive a restart of the dispatcher. Each outcome is one
JSON line on stderr (``logs/push.log``); message data is never logged.
"""

from __future__ import annotations

import heapq
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
IDLE_POLL_MIN_S = 0.02  # wait after an empty pull; grows by IDLE_POLL_GROWTH up to IDLE_POLL_MAX_S
IDLE_POLL_MAX_S = 5.0  # a safety net only: a doorbell (below) or a due redelivery wakes the loop
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


class SubscriptionWorker:
    """Pull loop, deliveries, leases and acks of one subscription."""

    def __init__(
        self, emulator: Emulator, route: Route, stop: threading.Event, instances: threading.Semaphore | None = None
    ) -> None:
        self.emulator = emulator
        self.route = route
        self.stop = stop
        # The function's requests in flight over all its routes (its instances x concurrency):
        # a delivery waits for a free one as Cloud Run queues a request, and gets 429 after QUEUE_S.
        self.instances = instances or threading.Semaphore(route.concurrency)
        self._bell = threading.Event()  # set by ring(): pull now
        self.rings = 0  # doorbells heard (GET /stats)
        self._due: list[float] = []  # heap of monotonic times when a nacked message is redelivered
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

    def ring(self) -> None:
        """A message was published to this subscription's topic: pull now."""
        with self._free:
            self.rings += 1
        self._bell.set()

    def _redelivery_at(self, when: float) -> None:
        with self._free:
            heapq.heappush(self._due, when)
        self._bell.set()  # the pull loop's wait must end by then: wake it to recompute (one pull)

    def _pop_due(self, now: float) -> bool:
        """Drop the redeliveries due by ``now`` (call under ``_free``); whether there were any."""
        popped = False
        while self._due and self._due[0] <= now:
            heapq.heappop(self._due)
            popped = True
        return popped

    def _idle_wait(self, idle_s: float) -> bool:
        """Sleep until the doorbell, a due redelivery or ``idle_s``; whether something came."""
        with self._free:
            now = time.monotonic()
            if self._pop_due(now):
                return True
            timeout = min(idle_s, self._due[0] - now) if self._due else idle_s
        rang = self._bell.wait(max(0.0, timeout))
        with self._free:
            due = self._pop_due(time.monotonic())
        return rang or due

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
                "rings": self.rings,
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
            self._bell.clear()  # a ring from now on means a message this pull may not have seen
            try:
                received = self.emulator.pull(self.route.subscription, room)
            except EmulatorError as exc:
                log_event(subscription=self.route.subscription, action="pull-failed", note=str(exc))
                self.stop.wait(RETRY_EMULATOR_S)
                continue
            if not received:  # wait for the doorbell; poll a few more times soon after it rang
                # (a due redelivery comes "roughly" when asked), then ever less often
                idle_s = IDLE_POLL_MIN_S if self._idle_wait(idle_s) else min(IDLE_POLL_MAX_S, idle_s * IDLE_POLL_GROWTH)
                continue
            idle_s = IDLE_POLL_MIN_S
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
            outcome = self._post_when_free(item)
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

    def _post_when_free(self, item: dict[str, Any]) -> deliver.Outcome:
        """The push request, once the function has a free request slot (a 429 if none came)."""
        if not self.instances.acquire(timeout=deliver.QUEUE_S):
            return deliver.Outcome(429, f"every request slot of {self.route.function} busy for {deliver.QUEUE_S:.0f} s")
        try:
            body = deliver.push_body(self.emulator.project, self.route.subscription, item)
            return deliver.post(self.route.endpoint, body, timeout_s=self.route.ack_deadline_s)
        finally:
            self.instances.release()

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
        self._redelivery_at(time.monotonic() + wait_s)
        return f"retry in {wait_s} s"


def start_workers(emulator: Emulator, routes: list[Route], stop: threading.Event) -> list[SubscriptionWorker]:
    """One started worker per route; the routes of one function share its request slots."""
    slots: dict[str, int] = {}
    for route in routes:
        slots[route.function] = max(slots.get(route.function, 0), route.concurrency)
    instances = {function: threading.Semaphore(count) for function, count in slots.items()}
    workers = [SubscriptionWorker(emulator, route, stop, instances[route.function]) for route in routes]
    for worker in workers:
        worker.start()
    return workers
