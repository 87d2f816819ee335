# The pipeline's topology, written out literally so it can be reviewed here and checked
# against shared/topology.py by tests/infra (which fail when the two differ).
#
# Deployed function names use '-' where the topology uses '_': a 2nd-gen function runs as a
# Cloud Run service, whose names may not contain '_'.

locals {
  topics = [
    "export-requests", "table-exports", "deliveries", "verify-requests", "verify-results", "delivery-continuations",
    "export-sweeps", "mirror-reconciles", "ingest-requests", "ingest-snapshots", "collect-requests", "collect-files",
    "restore-drills",
  ]

  # concurrency: requests one instance serves at once (max_instance_request_concurrency). Every
  # object written to the exports bucket reaches the three GCS-triggered functions, which
  # acknowledge most of them at once; with one request per instance those events queued and
  # Cloud Run answered 429 after 60 s. A concurrency above 1 needs a whole vCPU (functions.tf).
  functions = {
    fan_out = {
      deployed_name = "fan-out"
      source        = "export_table"
      entry_point   = "fan_out"
      timeout_s     = 120
      memory_mb     = 512
      max_instances = 10
      concurrency   = 2
      gcs_trigger   = false
      http          = false
      description   = "export-requests -> one table-exports message per table"
    }
    export_table = {
      deployed_name = "export-table"
      source        = "export_table"
      entry_point   = "export_table"
      timeout_s     = 540
      memory_mb     = 512
      max_instances = 10
      concurrency   = 16
      gcs_trigger   = false
      http          = false
      description   = "table-exports -> BigQuery export job; its completion (audit log) or export-sweeps -> _manifest.json"
    }
    upload_box = {
      deployed_name = "upload-box"
      source        = "upload_box"
      entry_point   = "upload_box"
      timeout_s     = 540
      memory_mb     = 1024
      max_instances = 10
      concurrency   = 8
      gcs_trigger   = true
      http          = false
      description   = "exports object finalized -> file in Box, receipt on deliveries"
    }
    transfer_sftp = {
      deployed_name = "transfer-sftp"
      source        = "transfer_sftp"
      entry_point   = "transfer_sftp"
      timeout_s     = 540
      memory_mb     = 512
      max_instances = 4
      concurrency   = 16
      gcs_trigger   = true
      http          = false
      description   = "exports object finalized -> file on each routed SFTP partner, receipt on deliveries"
    }
    verify = {
      deployed_name = "verify"
      source        = "verify"
      entry_point   = "verify"
      timeout_s     = 540
      memory_mb     = 1024
      max_instances = 10
      concurrency   = 16
      gcs_trigger   = true
      http          = false
      description   = "receipts, manifest finalize and verify-requests -> verify-results"
    }
    # seed 000's POST /sync API: called over HTTPS with an OIDC token by the invokers of http.tf.
    http_trigger = {
      deployed_name = "http-trigger"
      source        = "http_trigger"
      entry_point   = "http_trigger"
      timeout_s     = 3600
      memory_mb     = 512
      max_instances = 4
      concurrency   = 16
      gcs_trigger   = false
      http          = true
      description   = "POST /sync -> export-requests; GET /runs/<id>; POST /verify/<id> -> verify-requests"
    }
    # SQLite snapshot in GCS -> BigQuery (docs/ingest.md, infra/ingest.tf): one request per
    # instance, the snapshot on its memory-backed /tmp.
    ingest_sqlite = {
      deployed_name = "ingest-sqlite"
      source        = "ingest_sqlite"
      entry_point   = "ingest_sqlite"
      timeout_s     = 540
      memory_mb     = 2048
      max_instances = 2
      concurrency   = 1
      gcs_trigger   = false
      http          = false
      description   = "ingest-requests / snapshot finalize -> SQLite tables merged into BigQuery, results on verify-results"
    }
    # collect (docs/collect.md): a partner's SFTP directory -> every destination of the job
    collect_list = {
      deployed_name = "collect-list"
      source        = "collect"
      entry_point   = "collect_list"
      timeout_s     = 300
      memory_mb     = 512
      max_instances = 10
      concurrency   = 1
      gcs_trigger   = false
      http          = false
      description   = "collect-requests -> one collect-files message per new, stable partner file"
    }
    collect_copy = {
      deployed_name = "collect-copy"
      source        = "collect"
      entry_point   = "collect_copy"
      timeout_s     = 540
      memory_mb     = 1024
      max_instances = 4
      concurrency   = 2
      gcs_trigger   = false
      http          = false
      description   = "collect-files -> verified copy at every destination, then keep / move / delete"
    }
    # the restore drill (shared/restore/drill.py): one table per invocation, the rest continues
    restore_drill = {
      deployed_name = "restore-drill"
      source        = "restore_drill"
      entry_point   = "restore_drill"
      timeout_s     = 540
      memory_mb     = 1024
      max_instances = 2
      concurrency   = 1
      gcs_trigger   = false
      http          = false
      description   = "restore-drills -> a sampled table restored into the scratch dataset, proven, reported, dropped"
    }
  }

  # Pub/Sub triggers: push subscriptions managed here (retry policy + dead-letter topic).
  pubsub_feeds = {
    "fan-out-export-requests" = {
      function          = "fan_out"
      topic             = "export-requests"
      dead_letter_topic = "fan-out-export-requests-dlq"
    }
    "export-table-table-exports" = {
      function          = "export_table"
      topic             = "table-exports"
      dead_letter_topic = "export-table-table-exports-dlq"
    }
    # The scheduled finalize sweep (scheduler job offsite-export-finalize-sweep): runs whose
    # completion event was lost.
    "export-table-export-sweeps" = {
      function          = "export_table"
      topic             = "export-sweeps"
      dead_letter_topic = "export-table-export-sweeps-dlq"
    }
    # A transfer that ran out of its time budget continues from its checkpoint (both upload
    # functions read every continuation and act on those for their destination kinds).
    "upload-box-delivery-continuations" = {
      function          = "upload_box"
      topic             = "delivery-continuations"
      dead_letter_topic = "upload-box-delivery-continuations-dlq"
    }
    "transfer-sftp-delivery-continuations" = {
      function          = "transfer_sftp"
      topic             = "delivery-continuations"
      dead_letter_topic = "transfer-sftp-delivery-continuations-dlq"
    }
    "verify-deliveries" = {
      function          = "verify"
      topic             = "deliveries"
      dead_letter_topic = "verify-deliveries-dlq"
    }
    "verify-verify-requests" = {
      function          = "verify"
      topic             = "verify-requests"
      dead_letter_topic = "verify-verify-requests-dlq"
    }
    # A mirrored bucket's reconcile (scheduler jobs in mirror.tf; docs/mirror.md).
    "verify-mirror-reconciles" = {
      function          = "verify"
      topic             = "mirror-reconciles"
      dead_letter_topic = "verify-mirror-reconciles-dlq"
    }
    # Scheduled and manual ingest runs; the snapshot bucket's notification (infra/ingest.tf).
    "ingest-sqlite-ingest-requests" = {
      function          = "ingest_sqlite"
      topic             = "ingest-requests"
      dead_letter_topic = "ingest-sqlite-ingest-requests-dlq"
    }
    "ingest-sqlite-ingest-snapshots" = {
      function          = "ingest_sqlite"
      topic             = "ingest-snapshots"
      dead_letter_topic = "ingest-sqlite-ingest-snapshots-dlq"
    }
    # collect: scheduled per job (scheduler.tf), or `offsite collect run JOB`
    "collect-list-collect-requests" = {
      function          = "collect_list"
      topic             = "collect-requests"
      dead_letter_topic = "collect-list-collect-requests-dlq"
    }
    "collect-copy-collect-files" = {
      function          = "collect_copy"
      topic             = "collect-files"
      dead_letter_topic = "collect-copy-collect-files-dlq"
    }
    # restore drills: scheduled per dataset with restore_drill (config.tf), or `offsite restore-drill run`
    "restore-drill-restore-drills" = {
      function          = "restore_drill"
      topic             = "restore-drills"
      dead_letter_topic = "restore-drill-restore-drills-dlq"
    }
  }

  # GCS object-finalize triggers: the function's own Eventarc trigger on the exports bucket;
  # its Eventarc-managed subscription gets the dead-letter policy from eventarc.tf.
  gcs_feeds = {
    "upload-box-gcs-finalized" = {
      function          = "upload_box"
      event_type        = "google.cloud.storage.object.v1.finalized"
      dead_letter_topic = "upload-box-gcs-finalized-dlq"
    }
    "transfer-sftp-gcs-finalized" = {
      function          = "transfer_sftp"
      event_type        = "google.cloud.storage.object.v1.finalized"
      dead_letter_topic = "transfer-sftp-gcs-finalized-dlq"
    }
    "verify-gcs-finalized" = {
      function          = "verify"
      event_type        = "google.cloud.storage.object.v1.finalized"
      dead_letter_topic = "verify-gcs-finalized-dlq"
    }
  }

  # Cloud Audit Logs triggers: BigQuery's entry of a job (google.cloud.bigquery.v2.JobService.InsertJob,
  # BigQueryAuditMetadata; its completion has metadata.jobChange.after = DONE) reaches export_table,
  # which finishes the export whose job it names (docs/exports.md). The function's own Eventarc
  # trigger, like the GCS ones; dead letters attached the same way (eventarc.tf).
  audit_log_feeds = {
    "export-table-bigquery-job-completed" = {
      function     = "export_table"
      event_type   = "google.cloud.audit.log.v1.written"
      service_name = "bigquery.googleapis.com"
      method_name  = "google.cloud.bigquery.v2.JobService.InsertJob"
      # Audit-log triggers cannot be multi-regional; a global one receives the entries of jobs in
      # every location, the US and EU multi-regions included (https://cloud.google.com/eventarc/docs/locations).
      trigger_region    = "global"
      dead_letter_topic = "export-table-bigquery-job-completed-dlq"
    }
  }

  # Every Eventarc trigger (its subscription gets the dead-letter policy from eventarc.tf).
  eventarc_feeds = merge(local.gcs_feeds, local.audit_log_feeds)

  # dead-letter topic -> the subscription/trigger it serves
  dead_letter_topics = merge(
    { for name, feed in local.pubsub_feeds : feed.dead_letter_topic => name },
    { for name, feed in local.eventarc_feeds : feed.dead_letter_topic => name },
    { (local.reports_dead_letter_topic) = "dead-letter-reports" },
  )

  # Every dead-letter topic also pushes to verify, which reports each dead letter as a `failed`
  # result (shared/stages/dead_letters.py; shared.topology.dead_letter_reports). A report that
  # itself keeps failing ends on the last dead-letter topic below (pulled by `offsite dlq list`).
  reports_dead_letter_topic = "dead-letter-reports-dlq"
  dead_letter_reports = {
    for topic, feed in merge(
      { for name, f in local.pubsub_feeds : f.dead_letter_topic => name },
      { for name, f in local.eventarc_feeds : f.dead_letter_topic => name },
    ) : "${topic}-report" => { topic = topic, function = "verify" }
  }

  archive_sources = toset([for fn in values(local.functions) : fn.source])
}
