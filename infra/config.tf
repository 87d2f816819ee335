# Everything Terraform takes from the offsite YAML: names, retry policy, schedules, secrets.

locals {
  config_path = startswith(var.config_file, "/") ? var.config_file : "${path.module}/${var.config_file}"
  config_yaml = var.config_yaml != null ? var.config_yaml : file(local.config_path)
  config      = yamldecode(local.config_yaml)

  project         = try(coalesce(var.project, try(local.config.project, null)), null)
  region          = coalesce(var.region, try(local.config.region, null), "us-central1")
  bucket          = try(coalesce(var.bucket, try(local.config.bucket, null)), null)
  source_bucket   = coalesce(var.source_bucket, "${coalesce(local.project, "offsite")}-offsite-sources")
  expiration_days = coalesce(try(local.config.expiration_days, null), 30)

  # Redelivery and dead-letter policy of every feed (config `pubsub:`, shared.config defaults).
  pubsub = {
    max_delivery_attempts = coalesce(try(local.config.pubsub.max_delivery_attempts, null), 5)
    minimum_backoff_s     = coalesce(try(local.config.pubsub.minimum_backoff_s, null), 10)
    maximum_backoff_s     = coalesce(try(local.config.pubsub.maximum_backoff_s, null), 600)
  }

  # One Cloud Scheduler job per scheduled dataset / query export, plus the verify sweep.
  dataset_jobs = {
    for d in coalesce(try(local.config.datasets, null), []) : "offsite-dataset-${d.name}" => {
      schedule    = d.schedule
      time_zone   = coalesce(try(d.time_zone, null), "UTC")
      topic       = "export-requests"
      message     = jsonencode({ dataset = d.name })
      description = "offsite: export BigQuery dataset ${d.name}"
    } if try(d.schedule, null) != null
  }
  export_jobs = {
    for e in coalesce(try(local.config.exports, null), []) : "offsite-export-${e.name}" => {
      schedule    = e.schedule
      time_zone   = coalesce(try(e.time_zone, null), "UTC")
      topic       = "export-requests"
      message     = jsonencode({ export = e.name })
      description = "offsite: run query export ${e.name} for the scheduled day"
    } if try(e.schedule, null) != null
  }
  scheduler_jobs = merge(local.dataset_jobs, local.export_jobs, {
    "offsite-verify-sweep" = {
      schedule    = coalesce(try(local.config.verify.sweep_schedule, null), "*/30 * * * *")
      time_zone   = "UTC"
      topic       = "verify-requests"
      message     = jsonencode({ sweep = true })
      description = "offsite: verify sweep (reports runs still incomplete after the deadline)"
    }
  })

  # Datasets the exporter reads: the configured ones plus var.query_export_datasets.
  exported_datasets = { for d in coalesce(try(local.config.datasets, null), []) : d.name => { project = local.project, dataset = d.name } }
  query_datasets = {
    for ref in var.query_export_datasets : ref => {
      project = length(split(".", ref)) > 1 ? split(".", ref)[0] : local.project
      dataset = element(split(".", ref), length(split(".", ref)) - 1)
    }
  }

  # SFTP partners and the concurrency they allow: transfer_sftp handles one event per
  # instance and opens connections_per_file sessions to a partner, so its instance cap is
  # the smallest max_sessions / connections_per_file over the partners (and the topology's).
  sftp_partners = coalesce(try(local.config.destinations.sftp, null), {})
  sftp_instance_caps = [
    for name, partner in local.sftp_partners :
    floor(coalesce(try(partner.max_sessions, null), 4) / max(1, coalesce(try(partner.connections_per_file, null), 1)))
  ]
  max_instances = {
    for name, fn in local.functions : name => (
      name == "transfer_sftp" ? max(1, min(concat([fn.max_instances], local.sftp_instance_caps)...)) : fn.max_instances
    )
  }

  # Credentials the config references as sm://projects/P/secrets/S/versions/V, by who needs them.
  sm_pattern = "^sm://projects/([^/]+)/secrets/([^/]+)/versions/([^/]+)$"
  box_auth   = coalesce(try(local.config.destinations.box.auth, null), {})
  secret_refs = {
    box = [for field in ["jwt_config", "client_secret", "developer_token"] : try(local.box_auth[field], null)]
    sftp = flatten([
      for name, partner in local.sftp_partners : [
        for field in ["password", "private_key", "private_key_passphrase", "known_hosts"] : try(partner[field], null)
      ]
    ])
    alerts = [try(local.config.alerts.slack_webhook_url, null)]
  }
  secret_ids = {
    for group, refs in local.secret_refs : group => toset(concat(
      compact([for ref in refs : try(regex(local.sm_pattern, ref)[0] == local.project ? regex(local.sm_pattern, ref)[1] : "", "")]),
      group == "alerts" && var.alert_webhook_secret != null ? [var.alert_webhook_secret] : [],
    ))
  }
  managed_secrets = toset(flatten([for ids in values(local.secret_ids) : tolist(ids)]))
  foreign_secret_refs = [
    for ref in flatten(values(local.secret_refs)) : ref if try(regex(local.sm_pattern, ref)[0] != local.project, false)
  ]
}

check "secrets_live_in_this_project" {
  assert {
    condition     = length(local.foreign_secret_refs) == 0
    error_message = "The config references secrets in other projects (${join(", ", local.foreign_secret_refs)}): Terraform creates and grants only secrets of project ${coalesce(local.project, "?")}; grant the function service accounts roles/secretmanager.secretAccessor on those yourself."
  }
}
