"""Local Pub/Sub push: a dispatcher that delivers pull subscriptions of the emulator to functions.

The Pub/Sub emulator's own push delivers two messages at a time and gives up on an endpoint
that refuses connections; the cloud pushes with many concurrent requests and retries with
exponential backoff until the dead-letter policy takes over. This package does what the cloud
does, from one process (``python -m devstack.push``):

- :mod:`devstack.push.routes`: what to deliver where (subscription → endpoint, ack deadline,
  backoff, attempts, dead-letter topic, concurrency), written by ``devstack.stack``.
- :mod:`devstack.push.emulator`: the few REST calls on the emulator (pull, ack, modAck, publish).
- :mod:`devstack.push.dispatcher`: one worker per subscription: pull up to the free
  concurrency, POST the push body, ack on 2xx, nack with backoff, dead-letter after the last attempt.
- :mod:`devstack.push.supervisor`: restarts function processes that died (with backoff);
  also used by ``offsite dev restart`` and by ``offsite dev up`` on a running stack.
"""
