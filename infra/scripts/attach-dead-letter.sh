#!/usr/bin/env bash
# Give the Pub/Sub subscription that Eventarc created for a trigger the pipeline's retry
# and dead-letter policy (Eventarc's API has no such setting; Google documents updating
# the subscription). Run by Terraform (eventarc.tf) with:
#   PROJECT, REGION, TRIGGER (projects/P/locations/R/triggers/T or T),
#   DEAD_LETTER_TOPIC (projects/P/topics/T), MAX_DELIVERY_ATTEMPTS,
#   MIN_RETRY_DELAY, MAX_RETRY_DELAY (e.g. 10s, 600s), PUBSUB_AGENT (serviceAccount:...).
set -euo pipefail

for var in PROJECT REGION TRIGGER DEAD_LETTER_TOPIC MAX_DELIVERY_ATTEMPTS MIN_RETRY_DELAY MAX_RETRY_DELAY PUBSUB_AGENT; do
  if [[ -z "${!var:-}" ]]; then
    echo "attach-dead-letter: $var is not set" >&2
    exit 2
  fi
done
command -v gcloud >/dev/null || {
  echo "attach-dead-letter: gcloud is not on PATH (install the Google Cloud CLI, or apply with -var attach_eventarc_dead_letters=false)" >&2
  exit 2
}

trigger="${TRIGGER##*/}"
subscription=""
# A trigger that was just created may take a moment to report its transport.
for attempt in 1 2 3 4 5 6; do
  subscription="$(gcloud eventarc triggers describe "$trigger" --project="$PROJECT" --location="$REGION" \
    --format='value(transport.pubsub.subscription)')"
  [[ -n "$subscription" ]] && break
  sleep $((attempt * 5))
done
if [[ -z "$subscription" ]]; then
  echo "attach-dead-letter: trigger $trigger in $REGION reports no Pub/Sub subscription" >&2
  exit 1
fi
subscription="${subscription##*/}"

# The Pub/Sub service agent must be able to acknowledge on the subscription it dead-letters from.
gcloud pubsub subscriptions add-iam-policy-binding "$subscription" --project="$PROJECT" \
  --member="$PUBSUB_AGENT" --role=roles/pubsub.subscriber --quiet >/dev/null

gcloud pubsub subscriptions update "$subscription" --project="$PROJECT" \
  --dead-letter-topic="$DEAD_LETTER_TOPIC" \
  --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS" \
  --min-retry-delay="$MIN_RETRY_DELAY" \
  --max-retry-delay="$MAX_RETRY_DELAY" \
  --quiet

echo "attach-dead-letter: $subscription (trigger $trigger) -> $DEAD_LETTER_TOPIC after $MAX_DELIVERY_ATTEMPTS attempts"
