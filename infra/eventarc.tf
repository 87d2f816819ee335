# GCS object-finalize triggers go through Eventarc (the only way to get
# google.cloud.storage.object.v1.finalized CloudEvents). Eventarc creates and owns the
# Pub/Sub subscription behind each trigger; its API gives no dead-letter setting, so
# Terraform cannot declare one. Google's documented way is to update that subscription,
# which scripts/attach-dead-letter.sh does right after the trigger exists: same retry
# backoff and max delivery attempts as the managed push subscriptions, dead letters to
# <function>-gcs-finalized-dlq.

data "google_storage_project_service_account" "gcs" {
  project = local.project
}

# Eventarc's GCS source publishes bucket notifications to a topic Eventarc creates at
# trigger time (its name is unknown beforehand), so the grant is project-wide.
resource "google_project_iam_member" "gcs_agent_publisher" {
  project = local.project
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_project_iam_member" "trigger_event_receiver" {
  project = local.project
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.trigger.email}"
}

resource "terraform_data" "gcs_dead_letter" {
  for_each = var.attach_eventarc_dead_letters ? local.gcs_feeds : {}

  triggers_replace = {
    trigger               = google_cloudfunctions2_function.fn[each.value.function].event_trigger[0].trigger
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.value.dead_letter_topic].id
    max_delivery_attempts = local.pubsub.max_delivery_attempts
    minimum_backoff_s     = local.pubsub.minimum_backoff_s
    maximum_backoff_s     = local.pubsub.maximum_backoff_s
  }

  provisioner "local-exec" {
    command = "bash ${path.module}/scripts/attach-dead-letter.sh"

    environment = {
      PROJECT               = local.project
      REGION                = local.region
      TRIGGER               = google_cloudfunctions2_function.fn[each.value.function].event_trigger[0].trigger
      DEAD_LETTER_TOPIC     = google_pubsub_topic.dead_letter[each.value.dead_letter_topic].id
      MAX_DELIVERY_ATTEMPTS = local.pubsub.max_delivery_attempts
      MIN_RETRY_DELAY       = "${local.pubsub.minimum_backoff_s}s"
      MAX_RETRY_DELAY       = "${local.pubsub.maximum_backoff_s}s"
      PUBSUB_AGENT          = local.pubsub_agent
    }
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}
