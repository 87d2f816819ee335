"""Pub/Sub emulator of the stack: gcloud with the env file, google-cloud-pubsub, topology resources."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from devstack.state import StackInfo
from shared import topology


def _names(prefix: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"{prefix}-{tag}", f"{prefix}-{tag}-sub"


def test_gcloud_publish_with_the_env_file_reaches_a_subscriber(bare_stack: StackInfo, tmp_path: Path) -> None:
    topic, sub = _names("gcloud")
    admin = bare_stack.pubsub_admin()
    admin.create_topic(topic)
    admin.create_subscription(sub, topic)
    gcloud = shutil.which("gcloud")
    assert gcloud, "the Google Cloud CLI (gcloud) is part of the stack's prerequisites"
    # Nothing but the env file: what a user gets with `. .offsite/env`.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}
    script = f'. "{bare_stack.env_file}" && gcloud pubsub topics publish {topic} --message=\'{{"dataset":"sales"}}\' --attribute=origin=gcloud'
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    messages = admin.pull(sub)
    assert [m["data_bytes"] for m in messages] == [b'{"dataset":"sales"}']
    assert messages[0]["attributes"] == {"origin": "gcloud"}


def test_publish_and_pull_with_google_cloud_pubsub(bare_stack_env: StackInfo) -> None:
    from google.cloud import pubsub_v1

    topic, sub = _names("client")
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(bare_stack_env.project, topic)
    sub_path = subscriber.subscription_path(bare_stack_env.project, sub)
    publisher.create_topic(name=topic_path)
    subscriber.create_subscription(name=sub_path, topic=topic_path)
    publisher.publish(topic_path, b"payload", kind="test").result(timeout=30)
    response = subscriber.pull(subscription=sub_path, max_messages=5, timeout=30)
    assert [m.message.data for m in response.received_messages] == [b"payload"]
    assert response.received_messages[0].message.attributes["kind"] == "test"
    subscriber.acknowledge(subscription=sub_path, ack_ids=[m.ack_id for m in response.received_messages])
    subscriber.close()


def test_topics_and_dead_letter_topics_exist(bare_stack: StackInfo) -> None:
    admin = bare_stack.pubsub_admin()
    subs = {s["name"].rsplit("/", 1)[1]: s for s in admin.subscriptions()}
    for sub in topology.subscriptions():
        dlq_sub = bare_stack.dead_letter_subscriptions[sub.name]
        assert dlq_sub == f"{sub.dead_letter_topic}-sub"
        assert subs[dlq_sub]["topic"].endswith(f"/topics/{sub.dead_letter_topic}")
        assert sub.name not in subs, "a stack without functions has no push subscriptions"
    for topic in topology.TOPICS:  # publishing fails on a missing topic
        admin.publish(topic, b"{}")
