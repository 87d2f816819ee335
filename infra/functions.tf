# The 2nd-gen Cloud Functions. Pub/Sub triggers are push subscriptions (pubsub.tf);
# GCS finalize triggers are each function's own Eventarc trigger (event_trigger below).

locals {
  config_mount = "/etc/offsite"

  function_env = merge(
    {
      OFFSITE_CONFIG       = "${local.config_mount}/offsite.yaml"
      GOOGLE_CLOUD_PROJECT = local.project
      # Terraform's choices win over the YAML's, so the functions use what was deployed.
      OFFSITE__PROJECT      = local.project
      OFFSITE__BUCKET       = local.bucket
      OFFSITE__STATE_BUCKET = local.state_bucket
      OFFSITE__REGION       = local.region
      LOG_EXECUTION_ID      = "true"
    },
    var.alert_webhook_secret == null ? {} : {
      OFFSITE__ALERTS__SLACK_WEBHOOK_URL = "sm://projects/${local.project}/secrets/${var.alert_webhook_secret}/versions/latest"
    },
  )
}

resource "google_cloudfunctions2_function" "fn" {
  for_each = local.functions

  name        = each.value.deployed_name
  location    = local.region
  description = "offsite ${each.key}: ${each.value.description}"

  build_config {
    runtime           = var.runtime
    entry_point       = each.value.entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.data["sources"].name
        object = google_storage_bucket_object.archive[each.value.source].name
      }
    }
  }

  service_config {
    available_memory = "${each.value.memory_mb}M"
    # Cloud Run serves more than one request per instance only with at least 1 vCPU
    # (https://cloud.google.com/run/docs/configuring/cpu); below 2 GiB the default CPU is less.
    available_cpu                    = each.value.concurrency > 1 ? "1" : null
    timeout_seconds                  = each.value.timeout_s
    min_instance_count               = 0
    max_instance_count               = local.max_instances[each.key]
    max_instance_request_concurrency = each.value.concurrency
    # Only the HTTP trigger is called from outside Google Cloud (by its invokers, http.tf).
    ingress_settings               = each.value.http ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.function[each.key].email
    # functions-framework serves requests on THREADS threads: as many as the concurrency
    # (https://cloud.google.com/functions/docs/configuring/concurrency).
    environment_variables = merge(
      local.function_env,
      { THREADS = tostring(each.value.concurrency) },
      # Cloud Run checks the caller's token and forwards it without its signature (http.tf).
      each.value.http ? { OFFSITE__HTTP__AUDIENCES = local.http_audiences[each.key], OFFSITE__HTTP__PLATFORM_VERIFIED = "true" } : {},
    )

    # The config: a Secret Manager version pinned here, so a config change rolls out a new revision.
    secret_volumes {
      mount_path = local.config_mount
      project_id = local.project
      secret     = google_secret_manager_secret.config.secret_id

      versions {
        version = google_secret_manager_secret_version.config.version
        path    = "offsite.yaml"
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.value.gcs_trigger ? ["gcs-finalized"] : []

    content {
      trigger_region        = local.region
      event_type            = "google.cloud.storage.object.v1.finalized"
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.trigger.email

      event_filters {
        attribute = "bucket"
        value     = google_storage_bucket.data["exports"].name
      }
    }
  }

  # BigQuery job entries of Cloud Audit Logs (topology.tf audit_log_feeds): export_table finishes
  # an export when its job's completion arrives. BigQuery writes these entries without enabling
  # anything (its Data Access audit logs cannot be turned off).
  dynamic "event_trigger" {
    for_each = { for name, feed in local.audit_log_feeds : name => feed if feed.function == each.key }

    content {
      trigger_region        = event_trigger.value.trigger_region
      event_type            = event_trigger.value.event_type
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.trigger.email

      event_filters {
        attribute = "serviceName"
        value     = event_trigger.value.service_name
      }

      event_filters {
        attribute = "methodName"
        value     = event_trigger.value.method_name
      }
    }
  }

  depends_on = [
    google_project_service.api,
    google_secret_manager_secret_iam_member.config_reader,
    google_project_iam_member.build,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_reads_sources,
    google_project_iam_member.trigger_event_receiver,
    google_project_iam_member.gcs_agent_publisher,
    # The dead-letter script's credentials are checked before any trigger exists (eventarc.tf).
    terraform_data.dead_letter_preflight,
  ]
}

# Eventarc and Pub/Sub push both call the function's Cloud Run service as the trigger account
# (not the HTTP trigger: its invokers are the config's http.invokers, http.tf).
resource "google_cloud_run_v2_service_iam_member" "trigger_invoker" {
  for_each = { for name, fn in local.functions : name => fn if !fn.http }

  project  = local.project
  location = local.region
  name     = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# Images built from the archives; old ones are cleaned up.
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption is enough for images built from this repository's public source; a CMEK adds a KMS key with no threat it mitigates here.
  location      = local.region
  repository_id = "offsite-functions"
  description   = "Images of the offsite Cloud Functions"
  format        = "DOCKER"

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"

    most_recent_versions {
      keep_count = 5
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"

    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.api]
}
