"""``offsite dlq list|replay``: the dead-letter queues of shared.topology's subscriptions.

Listing hands the messages back at once (they stay queued); replaying publishes a Pub/Sub
message again on its topic, rewrites a GCS object for a fresh finalize event (for a mirrored
bucket's object delete: asks for the bucket's reconcile), or sends a finalize sweep for a BigQuery
job's completion, and acknowledges each message as soon as it is replayed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from offsite.cli.common import ConfigOption, load_cli_config, new_app
from offsite.cli.output import JsonOption, print_json, print_line, print_table
from shared.errors import OffsiteError
from shared.events import FIRST_PUBLISHED_ATTR

DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"
SOURCE_PUBLISH_TIME = DEAD_LETTER_PREFIX + "SourceTopicPublishTime"  # Pub/Sub: the original's publish time

app = new_app(no_args_is_help=True, help="Show and replay dead-lettered messages.")


def _dead_letter_subscriptions(only: str | None) -> list[Any]:
    from shared.topology import subscriptions

    subs = [s for s in subscriptions() if only in (None, s.name, s.dead_letter_topic, f"{s.dead_letter_topic}-sub")]
    if not subs:
        raise typer.BadParameter(f"{only!r} is not a subscription or dead-letter topic of shared.topology")
    return subs


def _dead_letters(only: str | None, limit: int) -> Iterator[tuple[Any, str, list[Any]]]:
    """(subscription, its dead-letter pull subscription, up to ``limit`` messages waiting there)
    for each push subscription ``only`` names (all when None)."""
    for sub in _dead_letter_subscriptions(only):
        pull_sub = f"{sub.dead_letter_topic}-sub"
        yield sub, pull_sub, _pull(pull_sub, limit)


def _pull(subscription: str, limit: int) -> list[Any]:
    """Up to ``limit`` waiting messages, without waiting for more to arrive."""
    from shared.gcp import clients, pubsub

    path = clients.subscriber_client().subscription_path(clients.project(), subscription)
    return pubsub.pull_waiting(path, limit)


def _settle(subscription: str, ack_ids: list[str], *, ack: bool) -> None:
    from shared.gcp import clients

    if not ack_ids:
        return
    client = clients.subscriber_client()
    path = client.subscription_path(clients.project(), subscription)
    if ack:
        client.acknowledge(request={"subscription": path, "ack_ids": ack_ids})
    else:  # hand them back at once, so a listing does not hide them for the ack deadline
        client.modify_ack_deadline(request={"subscription": path, "ack_ids": ack_ids, "ack_deadline_seconds": 0})


SubscriptionOption = Annotated[
    str | None, typer.Option("--subscription", "-s", help="One push subscription (or its DLQ).")
]


@app.command("list")
def dlq_list(
    subscription: SubscriptionOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Messages per dead-letter subscription.")] = 20,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Dead-lettered messages per subscription (they stay in the dead-letter queue)."""
    load_cli_config(config)
    listing = []
    for sub, pull_sub, received in _dead_letters(subscription, limit):
        _settle(pull_sub, [m.ack_id for m in received], ack=False)
        for m in received:
            msg = m.message
            listing.append(
                {
                    "subscription": sub.name,
                    "message_id": msg.message_id,
                    "published": msg.publish_time.isoformat(),
                    "attributes": dict(msg.attributes),
                    "data": msg.data.decode("utf-8", "replace"),
                }
            )
    if as_json:
        print_json(listing)
        return
    if not listing:
        print_line("no dead-lettered messages")
        return
    rows = [
        [
            item["subscription"],
            item["message_id"],
            item["published"],
            item["attributes"].get(f"{DEAD_LETTER_PREFIX}SourceDeliveryCount"),
            item["data"][:300],
        ]
        for item in listing
    ]
    print_table(("SUBSCRIPTION", "MESSAGE ID", "PUBLISHED", "ATTEMPTS", "DATA"), rows, right={"ATTEMPTS"})


@app.command("replay")
def dlq_replay(
    subscription: SubscriptionOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Messages to replay per dead-letter subscription.")
    ] = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Send dead-lettered messages again: Pub/Sub ones to their original topic (same data and
    attributes); GCS ones by rewriting the object, which fires a fresh OBJECT_FINALIZE (a mirrored
    bucket's object delete: a reconcile of the bucket on mirror-reconciles).
    Exit 1 when a message could not be replayed (it stays in its dead-letter queue)."""
    load_cli_config(config)
    outcomes: list[dict[str, Any]] = []
    for sub, pull_sub, received in _dead_letters(subscription, limit):
        leased = {m.ack_id for m in received}
        try:
            for m in received:
                outcome = _replay_and_ack(sub, pull_sub, m)
                if outcome["replayed"]:
                    leased.discard(m.ack_id)
                outcomes.append(outcome)
                if not as_json:
                    _print_replay(outcome)
        finally:  # what was not replayed (or not reached: an error, Ctrl-C) is handed back at once
            _settle(pull_sub, sorted(leased), ack=False)
    kept = sum(not o["replayed"] for o in outcomes)
    if as_json:
        print_json({"replayed": len(outcomes) - kept, "kept": kept, "messages": outcomes})
    else:
        typer.echo(f"replayed {len(outcomes) - kept}, kept {kept}")
    if kept:
        raise typer.Exit(1)


def _replay_and_ack(sub: Any, pull_sub: str, received: Any) -> dict[str, Any]:
    """Replay one message and acknowledge it at once, so nothing that stops the command later
    makes the next replay send it twice. A message that fails, for any reason, stays queued."""
    outcome = {"subscription": sub.name, "message_id": received.message.message_id}
    try:
        done = replay_one(sub, received.message)
    except Exception as exc:  # noqa: BLE001 - e.g. PermissionDenied on one topic: the others are still replayed
        error = str(exc) if isinstance(exc, OffsiteError) else f"{type(exc).__name__}: {exc}"
        return outcome | {"replayed": False, "error": error}
    _settle(pull_sub, [received.ack_id], ack=True)
    return outcome | {"replayed": True, "done": done}


def _print_replay(outcome: dict[str, Any]) -> None:
    where = f"{outcome['subscription']}  {outcome['message_id']}"
    if outcome["replayed"]:
        typer.echo(f"{where}: {outcome['done']}")
    else:
        typer.echo(f"{where}: kept in the dead-letter queue: {outcome['error']}", err=True)


def replay_one(sub: Any, message: Any) -> str:
    """Replay one dead-lettered message; returns what was done."""
    from shared.errors import PermanentError
    from shared.gcp import pubsub
    from shared.verify.heal import HEAL_DESTINATION_KEY, rewrite

    if sub.trigger.kind == "pubsub":
        attributes = {k: v for k, v in message.attributes.items() if not k.startswith(DEAD_LETTER_PREFIX)}
        # a request without a date is dated by when it was published: keep the original time
        first = message.attributes.get(SOURCE_PUBLISH_TIME)
        if first and FIRST_PUBLISHED_ATTR not in attributes:
            attributes[FIRST_PUBLISHED_ATTR] = first
        new_id = pubsub.publish(sub.trigger.topic, bytes(message.data), **attributes)
        return f"published again on {sub.trigger.topic} as {new_id}"
    if sub.trigger.kind == "auditlog":  # a BigQuery job's completion: the finalize sweep re-checks every open run
        from shared.topology import EXPORT_SWEEPS

        new_id = pubsub.publish(EXPORT_SWEEPS, json.dumps({"sweep": True}).encode(), origin="dlq-replay")
        return f"published a finalize sweep on {EXPORT_SWEEPS} as {new_id} (it finishes every run whose job is DONE)"
    try:  # a GCS notification: the object resource as JSON, or at least its attributes
        obj = json.loads(message.data or b"{}")
    except ValueError:
        obj = {}
    bucket = obj.get("bucket") or message.attributes.get("bucketId")
    name = obj.get("name") or message.attributes.get("objectId")
    if not bucket or not name:
        raise PermanentError("not a GCS notification (no bucket/name)")
    if is_delete_event(message):
        return _replay_delete(bucket, name)
    generation = rewrite(bucket, name, {HEAL_DESTINATION_KEY: "", "offsite-replay-of": message.message_id})
    return f"rewrote gs://{bucket}/{name} (generation {generation}): a new finalize event reaches every GCS-triggered function"


def is_delete_event(message: Any) -> bool:
    """An object-deleted event (only mirrored buckets' triggers send those, to the same dead-letter
    topic as finalize events: infra/mirror.tf): a GCS notification's ``eventType``, a CloudEvent's
    type, or the Eventarc subscription of a mirror delete trigger (``om-<function>-deleted-<hash>``)."""
    from shared.topology import GCS_DELETED

    attributes = message.attributes
    return (
        attributes.get("eventType") == "OBJECT_DELETE"
        or GCS_DELETED in (attributes.get("ce-type"), attributes.get("type"))
        or "-deleted-" in attributes.get(f"{DEAD_LETTER_PREFIX}SourceSubscription", "").rsplit("/", 1)[-1]
    )


def _replay_delete(bucket: str, name: str) -> str:
    """A delete cannot be fired again (the object is gone, or a newer one has its name): the
    bucket's reconcile removes the copies of what the bucket no longer holds."""
    from shared import runtime
    from shared.gcp import pubsub
    from shared.mirror.request import MirrorRequest
    from shared.topology import MIRROR_RECONCILES

    mirror = runtime.config().mirror(bucket)
    if mirror is None or mirror.delete != "mirror":
        policy = "is not mirrored" if mirror is None else f"has delete: {mirror.delete}"
        return f"nothing to replay: gs://{bucket}/{name} was deleted, and the bucket {policy} (its copies stay)"
    new_id = pubsub.publish(MIRROR_RECONCILES, MirrorRequest(bucket=bucket), origin="dlq-replay")
    return (
        f"gs://{bucket}/{name} was deleted: published a reconcile of {bucket} on {MIRROR_RECONCILES} as {new_id} "
        "(it removes the copies of deleted objects)"
    )
