# One service account per function, each with only what its stage does; one account that
# Eventarc and Pub/Sub push use to invoke the functions; one account for the builds.
# No project-wide data roles: datasets, topics, the bucket and secrets are granted one by one.

locals {
  service_account_ids = {
    fan_out       = "offsite-fan-out"
    export_table  = "offsite-export-table"
    upload_box    = "offsite-upload-box"
    transfer_sftp = "offsite-transfer-sftp"
    verify        = "offsite-verify"
    http_trigger  = "offsite-http-trigger"
    ingest_sqlite = "offsite-ingest-sqlite"
    collect_list  = "offsite-collect-list"
    collect_copy  = "offsite-collect-copy"
    restore_drill = "offsite-restore-drill"
  }

  # Topics each function publishes to. Every stage reports permanent failures on verify-results.
  topic_publishers = {
    fan_out       = ["table-exports", "verify-results"]
    export_table  = ["verify-results"]
    upload_box    = ["deliveries", "verify-results", "delivery-continuations"]
    transfer_sftp = ["deliveries", "verify-results", "delivery-continuations"]
    verify        = ["verify-results", "verify-requests"] # verify-requests: the recheck's pairs handed to other instances
    http_trigger  = ["export-requests", "verify-requests", "ingest-requests", "collect-requests", "restore-drills"]
    ingest_sqlite = ["verify-results", "ingest-requests"] # ingest-requests: tables deferred to a new invocation
    collect_list  = ["collect-files", "verify-results"]
    collect_copy  = ["verify-results", "collect-files"]  # collect-files: continuations of budgeted copies
    restore_drill = ["restore-drills", "verify-results"] # its own continuations
  }

  # A grant's IAM condition (the `condition` blocks of the bucket grants below) comes from:
  #   prefix       the names of the objects it covers start with this ("" and no suffix: the
  #                whole bucket, needed where objects are listed across prefixes);
  #   suffix       ... and end with this (one kind of object under the prefix);
  #   list_prefix  a listing grant instead. A listing is a request on the bucket, so a condition
  #                on resource.name (an object's name) never allows it; its prefix is the
  #                `storage.googleapis.com/objectListPrefix` API attribute of IAM Conditions
  #                (https://cloud.google.com/iam/docs/conditions-attribute-reference, "API attributes").
  # Roles on the exports bucket, each limited to the object prefix the stage works in.
  #   exports/  export_table writes runs and may overwrite its own export files (BigQuery writes
  #             as it, and a retried extract rewrites them); the uploaders record the
  #             delivered SHA-1 as object metadata (storage.objects.update, a custom role) and
  #             create each run's `_manifest.delivered.json` once (shared/delivery/manifest_copy.py);
  #             verify rewrites files to re-deliver them.
  # Roles on the state bucket (state_bucket_roles, reporting_bucket_roles):
  #   exports/      verify's markers (same run folder names), created and deleted; export_table's
  #                 one-time failure claim of a run (`<run folder>_export/failure.json`, created,
  #                 released when its report could not be published);
  #                 the uploaders' once-per-run failure marker (`<run folder>_verify/<destination>/
  #                 failed-<stage>.json`: created, counted, released; shared/stages/failures.py);
  #   checkpoints/  the upload functions' checkpoints of transfers longer than one invocation;
  #   dead-letters/, retention/, recheck/, sweep/, mirror/  verify's claims and records outside run folders;
  #   run-index/    fan_out's record of each request's table exports, created once, read by run id;
  #   results/      every stage's reported result is appended to the run history (create only);
  #   errors/       every stage's last error of an event being retried, for its dead letter;
  #   alerts/       queued alerts and the per-run rate limit, replaced with a generation match,
  #                 and listed (alerts/pending/<run>/) when a stage flushes its alerts.
  grant_defaults = { prefix = "", suffix = "", list_prefix = "" }
  export_prefix  = "${trimsuffix(coalesce(try(local.config.export_prefix, null), "exports"), "/")}/"
  bucket_roles = {
    export_table = {
      # BigQuery writes the export as export_table; a retried extract (same job id, same
      # wildcard URI) overwrites the files it already wrote, which needs delete too.
      replacer = { role = google_project_iam_custom_role.object_replacer.id, prefix = local.export_prefix }
      viewer   = { role = "roles/storage.objectViewer", prefix = "" }
    }
    upload_box = {
      viewer   = { role = "roles/storage.objectViewer", prefix = "" }
      metadata = { role = google_project_iam_custom_role.object_metadata_writer.id, prefix = local.export_prefix }
      # the run's delivered manifest, written once (if_generation_match=0, never replaced by them)
      delivered_manifest = { role = "roles/storage.objectCreator", prefix = local.export_prefix, suffix = "/_manifest.delivered.json" }
    }
    transfer_sftp = {
      viewer             = { role = "roles/storage.objectViewer", prefix = "" }
      metadata           = { role = google_project_iam_custom_role.object_metadata_writer.id, prefix = local.export_prefix }
      delivered_manifest = { role = "roles/storage.objectCreator", prefix = local.export_prefix, suffix = "/_manifest.delivered.json" }
    }
    verify = {
      viewer   = { role = "roles/storage.objectViewer", prefix = "" }
      replacer = { role = google_project_iam_custom_role.object_replacer.id, prefix = local.export_prefix }
    }
    http_trigger = {
      # GET /runs/<id>: the run's folders and their _run.json
      viewer = { role = "roles/storage.objectViewer", prefix = "" }
    }
  }
  state_bucket_roles = {
    fan_out = {
      # each request's table exports, recorded once before they are published (shared/run_index.py)
      run_index = { role = "roles/storage.objectCreator", prefix = "run-index/" }
    }
    export_table = {
      # a failed export job is reported once per run, claimed with if_generation_match=0
      # (shared/stages/export_records.py) and released when that report could not be published
      failure_claims = { role = google_project_iam_custom_role.object_replacer.id, prefix = local.export_prefix, suffix = "/_export/failure.json" }
      # where the next finalize sweep's listing starts (shared/listing_parts.py)
      sweep_cursor = { role = google_project_iam_custom_role.object_replacer.id, prefix = "sweep/", suffix = "/finalize-cursor.json" }
    }
    upload_box = {
      # checkpoints of transfers longer than one invocation (shared.delivery.checkpoint)
      checkpoints = { role = google_project_iam_custom_role.object_replacer.id, prefix = "checkpoints/" }
      # its once-per-run failure marker: claimed, its count replaced, released when unreported
      failure_markers = { role = google_project_iam_custom_role.object_replacer.id, prefix = local.export_prefix, suffix = "/failed-upload_box.json" }
    }
    transfer_sftp = {
      checkpoints     = { role = google_project_iam_custom_role.object_replacer.id, prefix = "checkpoints/" }
      failure_markers = { role = google_project_iam_custom_role.object_replacer.id, prefix = local.export_prefix, suffix = "/failed-transfer_sftp.json" }
    }
    verify = {
      markers = { role = google_project_iam_custom_role.object_replacer.id, prefix = local.export_prefix }
      viewer  = { role = "roles/storage.objectViewer", prefix = "" }
      # claims of dead letters reported (shared/stages/dead_letters.py) and of the daily
      # retention pass (shared/retention/scheduled.py), the recheck's and the sweep's listing
      # cursors (shared/verify/marker_scan.py, shared/verify/sweep.py), mirrored buckets'
      # reconcile records and pruning claims (shared/mirror/reconcile.py,
      # shared/retention/versions.py); outcomes replace claims.
      dead_letters = { role = google_project_iam_custom_role.object_replacer.id, prefix = "dead-letters/" }
      retention    = { role = google_project_iam_custom_role.object_replacer.id, prefix = "retention/" }
      recheck      = { role = google_project_iam_custom_role.object_replacer.id, prefix = "recheck/" }
      sweep        = { role = google_project_iam_custom_role.object_replacer.id, prefix = "sweep/", suffix = "/verify-cursor.json" }
      mirror       = { role = google_project_iam_custom_role.object_replacer.id, prefix = "mirror/" }
    }
    http_trigger = {
      # ?wait= and GET /runs/<id> read the run history (results/), listed by day and run
      viewer = { role = "roles/storage.objectViewer", prefix = "" }
    }
    # collect/: listings, runs, claims, copy records and the done ledger (shared/collect/state.py)
    collect_list = {
      state  = { role = google_project_iam_custom_role.object_replacer.id, prefix = "collect/" }
      viewer = { role = "roles/storage.objectViewer", prefix = "" }
    }
    collect_copy = {
      state  = { role = google_project_iam_custom_role.object_replacer.id, prefix = "collect/" }
      viewer = { role = "roles/storage.objectViewer", prefix = "" }
      # checkpoints of copies longer than one invocation (shared.collect.resume)
      checkpoints = { role = google_project_iam_custom_role.object_replacer.id, prefix = "checkpoints/" }
    }
    # restore-drill/: staged files (deleted after the load) and the per-dataset record; the run
    # history (results/) is read to pick the tables. BigQuery's load job reads the staged files.
    restore_drill = {
      state  = { role = google_project_iam_custom_role.object_replacer.id, prefix = "restore-drill/" }
      viewer = { role = "roles/storage.objectViewer", prefix = "" }
    }
  }
  # What every stage needs to report a result (shared.reporting.results.report), in the state bucket.
  reporting_bucket_roles = {
    history = { role = "roles/storage.objectCreator", prefix = "results/" }
    alerts  = { role = google_project_iam_custom_role.object_replacer.id, prefix = "alerts/" }
    # alert_outbox.flush lists the run's queued alerts (alerts/pending/<run>/)
    alert_listing = { role = google_project_iam_custom_role.object_lister.id, list_prefix = "alerts/" }
    # the stage runner's last error of a retried event (shared/reporting/last_errors.py), replaced per retry
    errors = { role = google_project_iam_custom_role.object_replacer.id, prefix = "errors/" }
  }

  # Which credential groups (config.tf secret_ids) each function reads; every stage may
  # post a Slack alert when it reports a failure.
  secret_groups = {
    fan_out       = ["alerts"]
    export_table  = ["alerts"]
    upload_box    = ["box", "drive", "alerts"]
    transfer_sftp = ["sftp", "alerts"]
    verify        = ["box", "sftp", "drive", "alerts"]
    http_trigger  = []
    ingest_sqlite = ["ingest", "alerts"]
    collect_list  = ["collect", "sftp", "alerts"]
    collect_copy  = ["collect", "box", "sftp", "drive", "alerts"]
    restore_drill = ["box", "sftp", "drive", "alerts"]
  }

  # Project-level roles: only the right to run BigQuery jobs (the exporter, the ingest).
  project_roles = {
    export_table  = ["roles/bigquery.jobUser"]
    ingest_sqlite = ["roles/bigquery.jobUser"] # load jobs and the MERGE transaction
    restore_drill = ["roles/bigquery.jobUser"] # the load job and the fingerprint query
  }

  topic_grants = merge([
    for fn, topics in local.topic_publishers : { for topic in topics : "${fn}/${topic}" => { function = fn, topic = topic } }
  ]...)
  bucket_grants = merge([
    for fn, roles in local.bucket_roles : { for label, grant in roles : "${fn}/${label}" => merge(local.grant_defaults, grant, { function = fn }) }
  ]...)
  state_bucket_grants = merge(concat(
    [for fn, roles in local.state_bucket_roles : { for label, grant in roles : "${fn}/${label}" => merge(local.grant_defaults, grant, { function = fn }) }],
    # (the HTTP trigger reports nothing: it answers its caller)
    [for fn, spec in local.functions : { for label, grant in local.reporting_bucket_roles : "${fn}/${label}" => merge(local.grant_defaults, grant, { function = fn }) } if !spec.http],
  )...)
  # Each bucket grant with its IAM condition (null: the whole bucket), as the two bucket
  # resources below write it.
  conditioned_grants = {
    for bucket_key, spec in {
      exports = { bucket = local.bucket, grants = local.bucket_grants }
      state   = { bucket = local.state_bucket, grants = local.state_bucket_grants }
      } : bucket_key => {
      for key, g in spec.grants : key => merge(g, {
        condition = (
          g.list_prefix != "" ? {
            title      = "listings under ${g.list_prefix}"
            expression = "api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"${g.list_prefix}\")"
            } : g.prefix == "" && g.suffix == "" ? null : {
            title = "objects under ${g.prefix}${g.suffix == "" ? "" : " named *${g.suffix}"}"
            expression = join(" && ", compact([
              "resource.name.startsWith(\"projects/_/buckets/${spec.bucket}/objects/${g.prefix}\")",
              g.suffix == "" ? "" : "resource.name.endsWith(\"${g.suffix}\")",
            ]))
          }
        )
      })
    }
  }
  secret_grants = merge([
    for fn, groups in local.secret_groups : {
      for id in toset(flatten([for group in groups : tolist(local.secret_ids[group])])) : "${fn}/${id}" => { function = fn, secret = id }
    }
  ]...)
  project_grants = merge([
    for fn, roles in local.project_roles : { for role in roles : "${fn}/${role}" => { function = fn, role = role } }
  ]...)
  # fan_out lists the tables of a dataset (and the HTTP trigger, which validates a request as
  # fan_out does before publishing it); export_table reads them (and what query exports read).
  dataset_grants = merge(
    { for key, ds in local.exported_datasets : "fan_out/${ds.project}.${ds.dataset}" => merge(ds, { function = "fan_out", role = "roles/bigquery.metadataViewer" }) },
    { for key, ds in local.exported_datasets : "http_trigger/${ds.project}.${ds.dataset}" => merge(ds, { function = "http_trigger", role = "roles/bigquery.metadataViewer" }) },
    { for key, ds in merge(local.exported_datasets, local.query_datasets) : "export_table/${ds.project}.${ds.dataset}" => merge(ds, { function = "export_table", role = "roles/bigquery.dataViewer" }) },
    # the restore drill creates, reads and drops its scratch tables
    { for key, ds in local.drill_datasets : "restore_drill/${ds.project}.${ds.dataset}" => merge(ds, { function = "restore_drill", role = "roles/bigquery.dataEditor" }) },
  )
}

resource "google_service_account" "function" {
  for_each = local.service_account_ids

  account_id   = each.value
  display_name = "offsite ${each.key}"
  description  = "Runs the offsite ${each.key} Cloud Function"

  depends_on = [google_project_service.api]
}

resource "google_service_account" "trigger" {
  account_id   = "offsite-trigger"
  display_name = "offsite triggers"
  description  = "Identity of the Eventarc triggers and Pub/Sub push subscriptions that invoke the offsite functions"

  depends_on = [google_project_service.api]
}

resource "google_service_account" "build" {
  account_id   = "offsite-build"
  display_name = "offsite builds"
  description  = "Cloud Build identity for building the offsite functions"

  depends_on = [google_project_service.api]
}

resource "google_project_iam_custom_role" "object_metadata_writer" {
  role_id     = "offsiteObjectMetadataWriter"
  title       = "offsite object metadata writer"
  description = "Read an object and update its metadata (delivered SHA-1), nothing else"
  permissions = ["storage.objects.get", "storage.objects.update"]
}

# Listing object names, nothing else: granted only with an objectListPrefix condition (above).
resource "google_project_iam_custom_role" "object_lister" {
  role_id     = "offsiteObjectLister"
  title       = "offsite object lister"
  description = "List object names (granted under one listing prefix: queued alerts)"
  permissions = ["storage.objects.list"]
}

# Replacing an object (create over an existing name, rewrite onto itself) needs delete as
# well as create; no predefined role has exactly these without list/update/restore.
resource "google_project_iam_custom_role" "object_replacer" {
  role_id     = "offsiteObjectReplacer"
  title       = "offsite object replacer"
  description = "Read, create and replace or delete objects (verify markers, re-delivery rewrites, alert rate limits)"
  permissions = ["storage.objects.create", "storage.objects.delete", "storage.objects.get"]
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.topic_grants

  topic  = google_pubsub_topic.pipeline[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

resource "google_storage_bucket_iam_member" "exports" {
  for_each = local.conditioned_grants.exports

  bucket = google_storage_bucket.data["exports"].name
  role   = each.value.role
  member = "serviceAccount:${google_service_account.function[each.value.function].email}"

  dynamic "condition" {
    for_each = each.value.condition == null ? [] : [each.value.condition]

    content {
      title      = condition.value.title
      expression = condition.value.expression
    }
  }
}

resource "google_storage_bucket_iam_member" "state" {
  for_each = local.conditioned_grants.state

  bucket = google_storage_bucket.data["state"].name
  role   = each.value.role
  member = "serviceAccount:${google_service_account.function[each.value.function].email}"

  dynamic "condition" {
    for_each = each.value.condition == null ? [] : [each.value.condition]

    content {
      title      = condition.value.title
      expression = condition.value.expression
    }
  }
}

resource "google_secret_manager_secret_iam_member" "credential_reader" {
  for_each = local.secret_grants

  secret_id = google_secret_manager_secret.credential[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

resource "google_project_iam_member" "function" {
  for_each = local.project_grants

  project = local.project
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

resource "google_bigquery_dataset_iam_member" "reader" {
  for_each = local.dataset_grants

  project    = each.value.project
  dataset_id = each.value.dataset
  role       = each.value.role
  member     = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

# Pub/Sub signs the OIDC token of each push request as the trigger account.
resource "google_service_account_iam_member" "pubsub_signs_trigger_tokens" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# Builds, with the roles Google documents for a function's build service account
# (https://cloud.google.com/run/docs/configuring/services/build-service-account):
# roles/logging.logWriter for the build logs, roles/artifactregistry.writer for the images (on
# our repository only) and roles/storage.objectAdmin to fetch the source and keep build state.
# Cloud Functions copies an archive into its own gcf-v2-sources-<number>-<region> bucket
# before building, so objectAdmin is granted with a condition naming only that bucket; our
# sources bucket is read only.
resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter"])

  project = local.project
  role    = each.key
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_project_iam_member" "build_reads_staged_sources" {
  project = local.project
  role    = "roles/storage.objectAdmin"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "gcf-v2-sources bucket only"
    description = "The bucket Cloud Functions stages function sources in"
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${local.region}\")"
  }
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.data["sources"].name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = local.project
  location   = local.region
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}
