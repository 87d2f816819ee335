# GCS bucket mirrors (the config's buckets[]; docs/mirror.md). Each mirrored bucket gets:
# - Eventarc triggers on its object finalize events (and delete events with `delete: mirror`)
#   for each delivery function serving one of the bucket's destination kinds (upload_box: box
#   and drive, transfer_sftp: sftp; shared/topology.py FunctionSpec.serves) — a function has one
#   event_trigger of its own (the exports bucket), so these are standalone triggers calling
#   the function's Cloud Run service as the trigger account;
# - read access to its objects, and the right to update object metadata, for the delivery
#   functions (they record the delivered SHA-1 and ledger entries) and verify (its reconcile
#   drops a ledger entry whose copy differs, shared/delivery/ledger.py forget);
# - a Cloud Scheduler job on its `schedule` publishing {"bucket": NAME} on mirror-reconciles
#   (verify hands it on as one request per destination on that topic, then lists both sides,
#   reports on verify-results and re-delivers through delivery-continuations, hence verify's
#   publisher grants on those two topics).
# - the same retry, dead-letter and 600 s ack-deadline policy on each trigger's Eventarc-managed
#   subscription as the functions' own GCS triggers (eventarc.tf, scripts/attach-dead-letter.sh):
#   an event that keeps failing goes to the delivery function's GCS dead-letter topic
#   (<function>-gcs-finalized-dlq, whose -report subscription makes verify publish it as a
#   `failed` result naming run mirror-{bucket}, and whose -sub keeps it for `offsite dlq`); an
#   upload of minutes is not redelivered while it runs. The reconcile still repairs what is lost.

locals {
  mirror_buckets = { for b in coalesce(try(local.config.buckets, null), []) : b.name => b }

  configured_destinations = concat(
    try(local.config.destinations.box, null) != null ? ["box"] : [],
    [for name in keys(local.sftp_partners) : "sftp:${name}"],
    [for name in keys(coalesce(try(local.config.destinations.drive, null), {})) : "drive:${name}"],
  )
  mirror_kinds = {
    for name, b in local.mirror_buckets : name => toset([
      for d in(length(coalesce(try(b.destinations, null), [])) > 0 ? b.destinations : local.configured_destinations) :
      split(":", d)[0]
    ])
  }
  # The destination kinds each delivery function serves (shared/topology.py; tests/infra checks it).
  delivery_function_kinds = { upload_box = ["box", "drive"], transfer_sftp = ["sftp"] }

  mirror_triggers = merge(flatten([
    for bucket, b in local.mirror_buckets : [
      for fn, kinds in local.delivery_function_kinds : {
        for event in(coalesce(try(b.delete, null), "keep") == "mirror" ? ["finalized", "deleted"] : ["finalized"]) :
        "${fn}/${event}/${bucket}" => {
          name       = "om-${local.functions[fn].deployed_name}-${event}-${substr(sha1(bucket), 0, 12)}"
          function   = fn
          bucket     = bucket
          location   = coalesce(try(b.location, null), local.region)
          event_type = "google.cloud.storage.object.v1.${event}"
          # the function's own GCS dead-letter topic (topology.tf gcs_feeds), already reported by verify
          dead_letter_topic = [for feed in values(local.gcs_feeds) : feed.dead_letter_topic if feed.function == fn][0]
        }
      } if length([for kind in kinds : kind if contains(local.mirror_kinds[bucket], kind)]) > 0
    ]
  ])...)

  mirror_bucket_grants = merge(flatten([
    for bucket, b in local.mirror_buckets : concat(
      [for fn in ["upload_box", "transfer_sftp", "verify"] : {
        "${fn}/viewer/${bucket}" = { function = fn, bucket = bucket, role = "roles/storage.objectViewer" }
      }],
      # verify's reconcile drops a destination's ledger entry before re-delivering (ledger.forget)
      [for fn in ["upload_box", "transfer_sftp", "verify"] : {
        "${fn}/metadata/${bucket}" = { function = fn, bucket = bucket, role = google_project_iam_custom_role.object_metadata_writer.id }
      }],
    )
  ])...)

  mirror_jobs = {
    for name, b in local.mirror_buckets : "offsite-mirror-${name}" => {
      bucket    = name
      schedule  = b.schedule
      time_zone = coalesce(try(b.time_zone, null), "UTC")
      message   = jsonencode({ bucket = name })
    } if try(b.schedule, null) != null
  }
}

resource "google_eventarc_trigger" "mirror" {
  for_each = local.mirror_triggers

  name            = each.value.name
  location        = each.value.location
  service_account = google_service_account.trigger.email
  labels          = { offsite = "mirror" }

  matching_criteria {
    attribute = "type"
    value     = each.value.event_type
  }

  matching_criteria {
    attribute = "bucket"
    value     = each.value.bucket
  }

  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.fn[each.value.function].service_config[0].service
      region  = local.region
    }
  }

  depends_on = [
    google_project_iam_member.trigger_event_receiver,
    google_project_iam_member.gcs_agent_publisher,
    google_cloud_run_v2_service_iam_member.trigger_invoker,
  ]
}

# As terraform_data.gcs_dead_letter (eventarc.tf) for the functions' own triggers.
resource "terraform_data" "mirror_dead_letter" {
  for_each = var.attach_eventarc_dead_letters ? local.mirror_triggers : {}

  triggers_replace = merge(local.eventarc_dead_letter_policy, {
    trigger           = google_eventarc_trigger.mirror[each.key].id
    dead_letter_topic = google_pubsub_topic.dead_letter[each.value.dead_letter_topic].id
  })

  provisioner "local-exec" {
    command = "bash ${path.module}/scripts/attach-dead-letter.sh"

    environment = merge(local.eventarc_dead_letter_env, {
      REGION            = each.value.location
      TRIGGER           = google_eventarc_trigger.mirror[each.key].id
      DEAD_LETTER_TOPIC = google_pubsub_topic.dead_letter[each.value.dead_letter_topic].id
    })
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher, terraform_data.dead_letter_preflight]
}

resource "google_storage_bucket_iam_member" "mirror" {
  for_each = local.mirror_bucket_grants

  bucket = each.value.bucket
  role   = each.value.role
  member = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

# verify's reconcile re-delivers through delivery-continuations, and hands a request for the
# whole bucket on as one request per destination on mirror-reconciles.
resource "google_pubsub_topic_iam_member" "mirror_publisher" {
  for_each = length(local.mirror_buckets) > 0 ? toset(["delivery-continuations", "mirror-reconciles"]) : toset([])

  topic  = google_pubsub_topic.pipeline[each.key].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function["verify"].email}"
}

# POST /mirror/<bucket> publishes the request the schedule would (shared/http_trigger/mirror.py).
resource "google_pubsub_topic_iam_member" "mirror_http_publisher" {
  count = length(local.mirror_buckets) > 0 ? 1 : 0

  topic  = google_pubsub_topic.pipeline["mirror-reconciles"].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function["http_trigger"].email}"
}

moved {
  from = google_pubsub_topic_iam_member.mirror_redelivery[0]
  to   = google_pubsub_topic_iam_member.mirror_publisher["delivery-continuations"]
}

resource "google_cloud_scheduler_job" "mirror" {
  for_each = local.mirror_jobs

  name        = replace(each.key, ".", "-") # a job id is letters, digits, '-' and '_'; bucket names may hold '.'
  region      = local.region
  description = "offsite: reconcile and verify the mirror of gs://${each.value.bucket}"
  schedule    = each.value.schedule
  time_zone   = each.value.time_zone

  retry_config {
    retry_count = 3
  }

  pubsub_target {
    topic_name = google_pubsub_topic.pipeline["mirror-reconciles"].id
    data       = base64encode(each.value.message)
    attributes = {
      origin = "cloud-scheduler"
      job    = each.key
    }
  }

  depends_on = [google_project_service.api]
}
