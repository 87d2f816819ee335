# Topics, the push subscriptions that feed functions from Pub/Sub, and the dead-letter
# topics with a pull subscription each (`gcloud pubsub subscriptions pull <dlq>-sub`).

locals {
  # Pub/Sub's service agent publishes dead letters, acks the source subscription and signs
  # the OIDC tokens of push requests.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  week         = "604800s"
}

resource "google_pubsub_topic" "pipeline" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption is enough for run metadata messages; a CMEK adds a KMS key to operate with no threat it mitigates here.
  for_each = toset(local.topics)

  name = each.key
  # Keep a week of messages so a topic can be replayed with `gcloud pubsub subscriptions seek`.
  message_retention_duration = local.week

  depends_on = [google_project_service.api]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption is enough for dead-lettered run metadata; see pipeline topics.
  for_each = local.dead_letter_topics

  name   = each.key
  labels = { role = "dead-letter" }

  depends_on = [google_project_service.api]
}

resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.dead_letter_topics

  name                       = "${each.key}-sub"
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  ack_deadline_seconds       = 60
  message_retention_duration = local.week

  # A dead-letter subscription is pulled only when something went wrong: never let it expire.
  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "feed" {
  for_each = local.pubsub_feeds

  name  = each.key
  topic = google_pubsub_topic.pipeline[each.value.topic].id

  # A push is acknowledged by the function's 2xx; give it the function's whole timeout.
  ack_deadline_seconds       = min(600, local.functions[each.value.function].timeout_s)
  message_retention_duration = local.week

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${local.pubsub.minimum_backoff_s}s"
    maximum_backoff = "${local.pubsub.maximum_backoff_s}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.value.dead_letter_topic].id
    max_delivery_attempts = local.pubsub.max_delivery_attempts
  }

  push_config {
    # The topic in the path becomes the CloudEvent source (functions-framework converts a
    # raw Pub/Sub push into google.cloud.pubsub.topic.v1.messagePublished).
    push_endpoint = "${google_cloudfunctions2_function.fn[each.value.function].service_config[0].uri}/projects/${local.project}/topics/${each.value.topic}"

    oidc_token {
      service_account_email = google_service_account.trigger.email
      audience              = google_cloudfunctions2_function.fn[each.value.function].service_config[0].uri
    }
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_cloud_run_v2_service_iam_member.trigger_invoker,
    google_service_account_iam_member.pubsub_signs_trigger_tokens,
  ]
}

resource "google_pubsub_subscription" "dead_letter_report" {
  for_each = local.dead_letter_reports

  name                       = each.key
  topic                      = google_pubsub_topic.dead_letter[each.value.topic].id
  ack_deadline_seconds       = min(600, local.functions[each.value.function].timeout_s)
  message_retention_duration = local.week

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${local.pubsub.minimum_backoff_s}s"
    maximum_backoff = "${local.pubsub.maximum_backoff_s}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[local.reports_dead_letter_topic].id
    max_delivery_attempts = local.pubsub.max_delivery_attempts
  }

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.fn[each.value.function].service_config[0].uri}/projects/${local.project}/topics/${each.value.topic}"

    oidc_token {
      service_account_email = google_service_account.trigger.email
      audience              = google_cloudfunctions2_function.fn[each.value.function].service_config[0].uri
    }
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_cloud_run_v2_service_iam_member.trigger_invoker,
    google_service_account_iam_member.pubsub_signs_trigger_tokens,
  ]
}

# Dead-lettering: the Pub/Sub service agent publishes to every dead-letter topic and
# acknowledges on the source subscriptions (Eventarc's ones: scripts/attach-dead-letter.sh).
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = local.dead_letter_topics

  topic  = google_pubsub_topic.dead_letter[each.key].name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = local.pubsub_feeds

  subscription = google_pubsub_subscription.feed[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "report_dead_letter_subscriber" {
  for_each = local.dead_letter_reports

  subscription = google_pubsub_subscription.dead_letter_report[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
