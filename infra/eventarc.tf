# GCS object-finalize triggers, and export_table's BigQuery audit-log trigger, go through Eventarc (the only way to get
# google.cloud.storage.object.v1.finalized CloudEvents). Eventarc creates and owns the
# Pub/Sub subscription behind each trigger (an output-only name, so Terraform can neither
# declare nor import it); neither the Eventarc API nor the provider's event_trigger has a
# dead-letter or ack-deadline setting. Google's documented way is to update that subscription
# (https://cloud.google.com/eventarc/docs/retry-events), which scripts/attach-dead-letter.sh
# does right after the trigger exists, with Terraform's own credentials: same retry backoff
# and max delivery attempts as the managed push subscriptions, dead letters to
# <function>-gcs-finalized-dlq, and a 600 s ack deadline (Pub/Sub's maximum) so an upload
# that runs for minutes is not redelivered while it runs.

locals {
  eventarc_ack_deadline_s = 600

  # The policy attach-dead-letter.sh gives an Eventarc-managed subscription (also mirror.tf's
  # triggers): replaced when it changes, and the script's environment besides the trigger, its
  # region and the dead-letter topic.
  eventarc_dead_letter_policy = {
    max_delivery_attempts = local.pubsub.max_delivery_attempts
    minimum_backoff_s     = local.pubsub.minimum_backoff_s
    maximum_backoff_s     = local.pubsub.maximum_backoff_s
    ack_deadline_s        = local.eventarc_ack_deadline_s
  }
  eventarc_dead_letter_env = {
    PROJECT                     = local.project
    MAX_DELIVERY_ATTEMPTS       = local.pubsub.max_delivery_attempts
    MIN_RETRY_DELAY             = "${local.pubsub.minimum_backoff_s}s"
    MAX_RETRY_DELAY             = "${local.pubsub.maximum_backoff_s}s"
    ACK_DEADLINE                = local.eventarc_ack_deadline_s
    PUBSUB_AGENT                = local.pubsub_agent
    IMPERSONATE_SERVICE_ACCOUNT = var.impersonate_service_account != null ? var.impersonate_service_account : ""
  }
}

# Read after the Cloud Storage API is enabled (apis.tf).
data "google_storage_project_service_account" "gcs" {
  project = local.project

  depends_on = [google_project_service.api]
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

# Before any trigger is created: can gcloud act with Terraform's credentials? Fails the apply
# up front, with a clear message, instead of after the functions exist.
resource "terraform_data" "dead_letter_preflight" {
  count = var.attach_eventarc_dead_letters ? 1 : 0

  triggers_replace = [local.project, var.impersonate_service_account]

  provisioner "local-exec" {
    command = "bash ${path.module}/scripts/attach-dead-letter.sh --check"

    environment = {
      PROJECT                     = local.project
      IMPERSONATE_SERVICE_ACCOUNT = var.impersonate_service_account != null ? var.impersonate_service_account : ""
    }
  }

  depends_on = [google_project_service.api]
}

resource "terraform_data" "gcs_dead_letter" {
  for_each = var.attach_eventarc_dead_letters ? local.eventarc_feeds : {}

  triggers_replace = merge(local.eventarc_dead_letter_policy, {
    trigger           = google_cloudfunctions2_function.fn[each.value.function].event_trigger[0].trigger
    dead_letter_topic = google_pubsub_topic.dead_letter[each.value.dead_letter_topic].id
  })

  provisioner "local-exec" {
    command = "bash ${path.module}/scripts/attach-dead-letter.sh"

    environment = merge(local.eventarc_dead_letter_env, {
      REGION            = try(each.value.trigger_region, local.region)
      TRIGGER           = google_cloudfunctions2_function.fn[each.value.function].event_trigger[0].trigger
      DEAD_LETTER_TOPIC = google_pubsub_topic.dead_letter[each.value.dead_letter_topic].id
    })
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}
