#!/usr/bin/env bash
# Give the Pub/Sub subscription that Eventarc created for a trigger the pipeline's retry and
# dead-letter policy and a 600 s ack deadline (Eventarc's API has no such setting; Google
# documents updating the subscription: https://cloud.google.com/eventarc/docs/retry-events).
# Run by Terraform (infra/eventarc.tf) with:
#   PROJECT, REGION, TRIGGER (projects/P/locations/R/triggers/T or T),
#   DEAD_LETTER_TOPIC (projects/P/topics/T), MAX_DELIVERY_ATTEMPTS,
#   MIN_RETRY_DELAY, MAX_RETRY_DELAY (e.g. 10s, 600s), ACK_DEADLINE (seconds),
#   PUBSUB_AGENT (serviceAccount:...), IMPERSONATE_SERVICE_ACCOUNT (optional).
# `attach-dead-letter.sh --check` (PROJECT only) checks gcloud and the credentials up front.
#
# Credentials: the ones Terraform uses, never gcloud's own login. GOOGLE_OAUTH_ACCESS_TOKEN
# (the google provider's access_token) if set, else an access token of your Application
# Default Credentials (`gcloud auth application-default print-access-token`, the provider's
# default), passed with gcloud's global --access-token-file; --impersonate-service-account
# when Terraform impersonates one (var.impersonate_service_account or
# GOOGLE_IMPERSONATE_SERVICE_ACCOUNT).
set -euo pipefail

die() {
  echo "attach-dead-letter: $1" >&2
  exit "${2:-2}"
}

check_only=false
[[ "${1:-}" == "--check" ]] && check_only=true

required=(PROJECT)
$check_only || required+=(REGION TRIGGER DEAD_LETTER_TOPIC MAX_DELIVERY_ATTEMPTS MIN_RETRY_DELAY MAX_RETRY_DELAY ACK_DEADLINE PUBSUB_AGENT)
for var in "${required[@]}"; do
  [[ -n "${!var:-}" ]] || die "$var is not set"
done
command -v gcloud >/dev/null ||
  die "gcloud is not on PATH: install the Google Cloud CLI (no login needed: Terraform's credentials are used), or apply with -var attach_eventarc_dead_letters=false"

token_file="$(mktemp)"
trap 'rm -f "$token_file"' EXIT
chmod 600 "$token_file"
if [[ -n "${GOOGLE_OAUTH_ACCESS_TOKEN:-}" ]]; then
  printf '%s' "$GOOGLE_OAUTH_ACCESS_TOKEN" >"$token_file"
  source_of_token="GOOGLE_OAUTH_ACCESS_TOKEN"
elif gcloud auth application-default print-access-token >"$token_file" 2>/dev/null && [[ -s "$token_file" ]]; then
  source_of_token="Application Default Credentials"
else
  die "no credentials for gcloud: Terraform's are not available here. Set GOOGLE_OAUTH_ACCESS_TOKEN, or run 'gcloud auth application-default login' (or point GOOGLE_APPLICATION_CREDENTIALS at a key), or apply with -var attach_eventarc_dead_letters=false"
fi

impersonate="${IMPERSONATE_SERVICE_ACCOUNT:-${GOOGLE_IMPERSONATE_SERVICE_ACCOUNT:-}}"
auth=(--access-token-file="$token_file")
[[ -n "$impersonate" ]] && auth+=(--impersonate-service-account="$impersonate")

if $check_only; then
  gcloud "${auth[@]}" projects describe "$PROJECT" --format='value(projectNumber)' >/dev/null ||
    die "gcloud cannot read project $PROJECT with the credentials from $source_of_token${impersonate:+ as $impersonate}; fix them, or apply with -var attach_eventarc_dead_letters=false" 1
  echo "attach-dead-letter: gcloud can act on $PROJECT with $source_of_token${impersonate:+ as $impersonate}"
  exit 0
fi

trigger="${TRIGGER##*/}"
subscription=""
# A trigger that was just created may take a moment to report its transport.
for attempt in 1 2 3 4 5 6; do
  subscription="$(gcloud "${auth[@]}" eventarc triggers describe "$trigger" --project="$PROJECT" --location="$REGION" \
    --format='value(transport.pubsub.subscription)')"
  [[ -n "$subscription" ]] && break
  sleep $((attempt * 5))
done
[[ -n "$subscription" ]] || die "trigger $trigger in $REGION reports no Pub/Sub subscription" 1
subscription="${subscription##*/}"

# The Pub/Sub service agent must be able to acknowledge on the subscription it dead-letters from.
gcloud "${auth[@]}" pubsub subscriptions add-iam-policy-binding "$subscription" --project="$PROJECT" \
  --member="$PUBSUB_AGENT" --role=roles/pubsub.subscriber --quiet >/dev/null

gcloud "${auth[@]}" pubsub subscriptions update "$subscription" --project="$PROJECT" \
  --ack-deadline="$ACK_DEADLINE" \
  --dead-letter-topic="$DEAD_LETTER_TOPIC" \
  --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS" \
  --min-retry-delay="$MIN_RETRY_DELAY" \
  --max-retry-delay="$MAX_RETRY_DELAY" \
  --quiet

echo "attach-dead-letter: $subscription (trigger $trigger): ack deadline ${ACK_DEADLINE}s, -> $DEAD_LETTER_TOPIC after $MAX_DELIVERY_ATTEMPTS attempts"
