# SQLite -> BigQuery ingest (docs/ingest.md), present when the config has an `ingest:` section:
# the dataset the tables land in (with _offsite_sync_state), the ingest function's rights on it
# (and the HTTP trigger's read of it, for GET /ingest),
# the snapshot bucket's notification on ingest-snapshots, read access to the snapshot, and the
# two Cloud Scheduler jobs (incremental, default every 15 min; full, default daily) publishing
# on ingest-requests (created with the others by scheduler.tf, from config.tf's scheduler_jobs).
# The function itself, its topics and push subscriptions are in topology.tf.

locals {
  ingest         = try(local.config.ingest, null)
  ingest_enabled = local.ingest != null
  ingest_dataset = try(local.ingest.dataset, null)
  # both jobs' time zone (ingest.time_zone): a schedule such as "30 7 * * *" at 07:30 in Kolkata
  ingest_time_zone = coalesce(try(local.ingest.time_zone, null), "UTC")
  # gs://BUCKET/PATH of the snapshot `offsite ingest push` uploads (null: requests only)
  ingest_snapshot = try(regex("^gs://([^/]+)/(.+)$", local.ingest.snapshot_uri), null)

  ingest_jobs = local.ingest_enabled ? merge(
    try(local.ingest.schedule, "*/15 * * * *") == null ? {} : {
      "offsite-ingest-incremental" = {
        schedule    = try(local.ingest.schedule, "*/15 * * * *")
        time_zone   = local.ingest_time_zone
        topic       = "ingest-requests"
        message     = jsonencode({})
        description = "offsite: incremental SQLite -> BigQuery ingest"
      }
    },
    try(local.ingest.full_schedule, "30 2 * * *") == null ? {} : {
      "offsite-ingest-full" = {
        schedule    = try(local.ingest.full_schedule, "30 2 * * *")
        time_zone   = local.ingest_time_zone
        topic       = "ingest-requests"
        message     = jsonencode({ full = true })
        description = "offsite: full SQLite -> BigQuery ingest (re-reads every row; merge by key)"
      }
    },
  ) : {}
}

resource "google_bigquery_dataset" "ingest" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption, as for the exported datasets themselves; a CMEK adds a KMS key to operate with no threat it mitigates here.
  count = local.ingest_enabled ? 1 : 0

  project     = local.project
  dataset_id  = local.ingest_dataset
  location    = "US" # the multi-region BigQuery defaults to; move the dataset with a reset if you change it
  description = "offsite: tables ingested from SQLite, and _offsite_sync_state (watermarks, leases)"

  depends_on = [google_project_service.api]
}

# Creates and alters its tables, loads and deletes staging tables, MERGEs: exactly these, on
# this dataset only (roles/bigquery.dataEditor would also let it delete the dataset's tables'
# snapshots, routines and models).
resource "google_project_iam_custom_role" "ingest_writer" {
  count = local.ingest_enabled ? 1 : 0

  role_id     = "offsiteIngestWriter"
  title       = "offsite ingest writer"
  description = "Create, alter, load, read and MERGE the ingested tables; create and delete staging tables"
  permissions = [
    "bigquery.datasets.get",
    "bigquery.tables.create",
    "bigquery.tables.delete",
    "bigquery.tables.get",
    "bigquery.tables.getData",
    "bigquery.tables.update",
    "bigquery.tables.updateData",
  ]
}

resource "google_bigquery_dataset_iam_member" "ingest_editor" {
  count = local.ingest_enabled ? 1 : 0

  project    = local.project
  dataset_id = google_bigquery_dataset.ingest[0].dataset_id
  role       = google_project_iam_custom_role.ingest_writer[0].id
  member     = "serviceAccount:${google_service_account.function["ingest_sqlite"].email}"
}

# GET /ingest reads the sync state (_offsite_sync_state) as a plain table (tabledata.list: no
# query job, so no bigquery.jobUser): the HTTP trigger may read this dataset, nothing else of it.
# The state table is created by the ingest function, not here, so the grant is on the dataset.
resource "google_bigquery_dataset_iam_member" "ingest_state_reader" {
  count = local.ingest_enabled ? 1 : 0

  project    = local.project
  dataset_id = google_bigquery_dataset.ingest[0].dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.function["http_trigger"].email}"
}

# The snapshot is read (the pinned generation) from the bucket the app uploads it to.
resource "google_storage_bucket_iam_member" "ingest_snapshot_reader" {
  count = local.ingest_snapshot != null ? 1 : 0

  bucket = local.ingest_snapshot[0]
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.function["ingest_sqlite"].email}"

  condition {
    title      = "the ingest snapshot only"
    expression = "resource.name == \"projects/_/buckets/${local.ingest_snapshot[0]}/objects/${local.ingest_snapshot[1]}\""
  }
}

# A new snapshot starts an incremental sync: the bucket's OBJECT_FINALIZE notification for that
# object, on ingest-snapshots (the function ignores other objects). GCS's service agent already
# publishes for Eventarc (eventarc.tf: gcs_agent_publisher).
resource "google_storage_notification" "ingest_snapshot" {
  count = local.ingest_snapshot != null ? 1 : 0

  bucket             = local.ingest_snapshot[0]
  payload_format     = "JSON_API_V1"
  topic              = google_pubsub_topic.pipeline["ingest-snapshots"].id
  event_types        = ["OBJECT_FINALIZE"]
  object_name_prefix = local.ingest_snapshot[1]

  depends_on = [google_project_iam_member.gcs_agent_publisher]
}
