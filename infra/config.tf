# Everything Terraform takes from the offsite YAML: names, retry policy, schedules, secrets.

locals {
  config_path = startswith(var.config_file, "/") ? var.config_file : "${path.module}/${var.config_file}"
  config_yaml = var.config_yaml != null ? var.config_yaml : file(local.config_path)
  config      = yamldecode(local.config_yaml)

  project = try(coalesce(var.project, try(local.config.project, null)), null)
  region  = coalesce(var.region, try(local.config.region, null), "us-central1")
  bucket  = try(coalesce(var.bucket, try(local.config.bucket, null)), null)
  # a domain-scoped project id (example.com:proj) holds ':' and '.', which bucket names may not
  source_bucket = coalesce(var.source_bucket, "${replace(replace(coalesce(local.project, "offsite"), ":", "-"), ".", "-")}-offsite-sources")
  # offsite's own state (verify markers, run history, alerts, transfer checkpoints): apart from
  # the exports bucket, whose object events start the upload functions (shared.config state_bucket).
  state_bucket    = try(coalesce(try(local.config.state_bucket, null), "${local.bucket}-state"), null)
  expiration_days = coalesce(try(local.config.expiration_days, null), 30)

  # Redelivery and dead-letter policy of every feed (config `pubsub:`, shared.config defaults).
  pubsub = {
    max_delivery_attempts = coalesce(try(local.config.pubsub.max_delivery_attempts, null), 5)
    minimum_backoff_s     = coalesce(try(local.config.pubsub.minimum_backoff_s, null), 10)
    maximum_backoff_s     = coalesce(try(local.config.pubsub.maximum_backoff_s, null), 600)
  }

  # One Cloud Scheduler job per scheduled dataset / query export, plus the verify sweep (and the
  # ingest's, infra/ingest.tf).
  scheduled_requests = concat(
    [for d in coalesce(try(local.config.datasets, null), []) : {
      job         = "offsite-dataset-${d.name}", entry = d, request = { dataset = d.name },
      description = "offsite: export BigQuery dataset ${d.name}"
    }],
    [for e in coalesce(try(local.config.exports, null), []) : {
      job         = "offsite-export-${e.name}", entry = e, request = { export = e.name },
      description = "offsite: run query export ${e.name} for the scheduled day"
    }],
    [for c in coalesce(try(local.config.collect.jobs, null), []) : {
      job         = "offsite-collect-${c.name}", entry = c, request = { collect = c.name },
      description = "offsite: collect ${c.name} from SFTP partner ${c.partner}"
    }],
  )
  request_jobs = {
    for r in local.scheduled_requests : r.job => {
      schedule    = r.entry.schedule
      time_zone   = coalesce(try(r.entry.time_zone, null), "UTC")
      topic       = try(r.request.collect, null) != null ? "collect-requests" : "export-requests"
      message     = jsonencode(r.request)
      description = r.description
    } if try(r.entry.schedule, null) != null
  }
  # One per dataset with a restore_drill (shared/restore/drill.py), on its own schedule.
  restore_drill_jobs = {
    for d in coalesce(try(local.config.datasets, null), []) : "offsite-restore-drill-${d.name}" => {
      schedule    = d.restore_drill.schedule
      time_zone   = coalesce(try(d.restore_drill.time_zone, null), "UTC")
      topic       = "restore-drills"
      message     = jsonencode({ dataset = d.name })
      description = "offsite: restore drill of dataset ${d.name} (restore, compare, drop)"
    } if try(d.restore_drill, null) != null
  }
  # Scratch datasets the restore drill loads into and drops from (PROJECT.DATASET or DATASET).
  drill_datasets = {
    for d in coalesce(try(local.config.datasets, null), []) :
    (length(split(".", d.restore_drill.to)) > 1 ? d.restore_drill.to : "${local.project}.${d.restore_drill.to}") => {
      project = length(split(".", d.restore_drill.to)) > 1 ? split(".", d.restore_drill.to)[0] : local.project
      dataset = length(split(".", d.restore_drill.to)) > 1 ? split(".", d.restore_drill.to)[1] : d.restore_drill.to
    } if try(d.restore_drill, null) != null
  }
  scheduler_jobs = merge(local.request_jobs, local.ingest_jobs, local.restore_drill_jobs, {
    "offsite-verify-sweep" = {
      schedule    = coalesce(try(local.config.verify.sweep_schedule, null), "*/30 * * * *")
      time_zone   = "UTC"
      topic       = "verify-requests"
      message     = jsonencode({ sweep = true })
      description = "offsite: verify sweep (reports runs still incomplete after the deadline)"
    }
    "offsite-export-finalize-sweep" = {
      schedule    = "*/15 * * * *"
      time_zone   = "UTC"
      topic       = "export-sweeps"
      message     = jsonencode({ sweep = true })
      description = "offsite: export finalize sweep (writes manifests of finished jobs whose completion event was lost)"
    }
  })

  # Datasets the exporter reads: the configured ones, the ones each query export's SQL names
  # after FROM / JOIN (a `backticked` dataset.table or project.dataset.table, a wildcard table
  # `…events_*` included, or an unquoted project.dataset.table; an unquoted dataset.table is not
  # told apart from a column such as EXTRACT(DATE FROM t.created_at), so it is not read), every
  # `backticked` project.dataset.table anywhere (a comma join: no column has three parts), and
  # var.query_export_datasets.
  exported_datasets = { for d in coalesce(try(local.config.datasets, null), []) : "${local.project}.${d.name}" => { project = local.project, dataset = d.name } }
  query_table_refs = flatten([
    for e in coalesce(try(local.config.exports, null), []) : concat(
      [
        for m in regexall("(?i)\\b(?:from|join)\\s+(?:`([A-Za-z0-9_-]+(?:\\.[A-Za-z0-9_-]+)?\\.[A-Za-z0-9_*-]+)`|([A-Za-z0-9_]+\\.[A-Za-z0-9_]+\\.[A-Za-z0-9_]+)\\b)", try(e.sql, "")) :
        coalesce(m[0], m[1])
      ],
      regexall("`([A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_*-]+)`", try(e.sql, "")),
    )
  ])
  # project.dataset.table -> project.dataset; dataset.table or dataset -> PROJECT.dataset
  query_dataset_refs = distinct([
    for ref in concat(
      [for t in local.query_table_refs : join(".", slice(split(".", t), 0, length(split(".", t)) - 1))],
      var.query_export_datasets,
    ) : length(split(".", ref)) > 1 ? ref : "${local.project}.${ref}"
  ])
  query_datasets = {
    for ref in local.query_dataset_refs : ref => { project = split(".", ref)[0], dataset = split(".", ref)[1] }
  }

  # SFTP partners and the concurrency they allow. One transfer_sftp instance serves
  # `concurrency` events at once, each writing a file over connections_per_file sessions, and
  # its process-wide pool (shared.destinations.sftp.pool) never holds more than max_sessions
  # to a partner: an instance holds at most min(concurrency x connections_per_file,
  # max_sessions) sessions, so the instance cap that keeps the partner's limit is
  # max_sessions / that, over every partner (and at most the topology's cap, at least 1).
  sftp_partners    = coalesce(try(local.config.destinations.sftp, null), {})
  collect_partners = coalesce(try(local.config.collect.partners, null), {})
  sftp_instance_caps = [
    for name, partner in local.sftp_partners :
    floor(
      coalesce(try(partner.max_sessions, null), 4) / min(
        coalesce(try(partner.max_sessions, null), 4),
        local.functions.transfer_sftp.concurrency * max(1, coalesce(try(partner.connections_per_file, null), 1)),
      )
    )
  ]
  # collect_copy reads each file over one session to its job's partner (collect.partners first,
  # else destinations.sftp: shared.config.models), `concurrency` files at a time: the same cap
  # over the partners collect jobs read from. collect_list's listing adds one session at times.
  collect_sources = distinct([for job in coalesce(try(local.config.collect.jobs, null), []) : job.partner])
  collect_source_sessions = [
    for name in local.collect_sources :
    coalesce(try(merge(local.sftp_partners, local.collect_partners)[name].max_sessions, null), 4)
  ]
  collect_instance_caps = [
    for sessions in local.collect_source_sessions :
    floor(sessions / min(sessions, local.functions.collect_copy.concurrency))
  ]
  max_instances = {
    for name, fn in local.functions : name => (
      name == "transfer_sftp" ? max(1, min(concat([fn.max_instances], local.sftp_instance_caps)...)) :
      name == "collect_copy" ? max(1, min(concat([fn.max_instances], local.collect_instance_caps)...)) :
      fn.max_instances
    )
  }

  # Credentials the config references as sm://projects/P/secrets/S/versions/V, by who needs them.
  sm_pattern = "^sm://projects/([^/]+)/secrets/([^/]+)/versions/([^/]+)$"
  box_auth   = coalesce(try(local.config.destinations.box.auth, null), {})
  credential_fields = {
    box   = ["jwt_config", "client_secret", "developer_token"]
    sftp  = ["password", "private_key", "private_key_passphrase", "known_hosts"]
    drive = ["service_account_key", "client_secret", "refresh_token"]
  }
  drive_folders = coalesce(try(local.config.destinations.drive, null), {})
  secret_refs = {
    box = [for field in local.credential_fields.box : try(local.box_auth[field], null)]
    sftp = flatten([
      for name, partner in local.sftp_partners : [
        for field in local.credential_fields.sftp : try(partner[field], null)
      ]
    ])
    drive = flatten([
      for name, folder in local.drive_folders : [
        for field in local.credential_fields.drive : try(folder.auth[field], null)
      ]
    ])
    collect = flatten([
      for name, partner in local.collect_partners : [
        for field in local.credential_fields.sftp : try(partner[field], null)
      ]
    ])
    alerts = [try(local.config.alerts.slack_webhook_url, null)]
    ingest = [try(local.config.ingest.hash_key, null)]
  }
  secret_ids = {
    for group, refs in local.secret_refs : group => toset(concat(
      compact([for ref in refs : try(regex(local.sm_pattern, ref)[0] == local.project ? regex(local.sm_pattern, ref)[1] : "", "")]),
      group == "alerts" && var.alert_webhook_secret != null ? [var.alert_webhook_secret] : [],
    ))
  }
  managed_secrets = toset(flatten([for ids in values(local.secret_ids) : tolist(ids)]))
  # Every credential the config holds, by its path: each must be an sm:// reference (a value,
  # env:NAME or file:PATH would land in the offsite-config secret and in Terraform state, and
  # env:/file: mean nothing inside a function).
  credentials = merge(
    { for field in local.credential_fields.box : "destinations.box.auth.${field}" => try(local.box_auth[field], null) },
    merge(concat([{}], [
      for name, partner in local.sftp_partners : {
        for field in local.credential_fields.sftp : "destinations.sftp.${name}.${field}" => try(partner[field], null)
      }
    ])...),
    merge(concat([{}], [
      for name, folder in local.drive_folders : {
        for field in local.credential_fields.drive : "destinations.drive.${name}.auth.${field}" => try(folder.auth[field], null)
      }
    ])...),
    merge(concat([{}], [
      for name, partner in local.collect_partners : {
        for field in local.credential_fields.sftp : "collect.partners.${name}.${field}" => try(partner[field], null)
      }
    ])...),
    { "alerts.slack_webhook_url" = try(local.config.alerts.slack_webhook_url, null) },
    { "ingest.hash_key" = try(local.config.ingest.hash_key, null) },
  )
  plain_credentials = sort([
    for path, value in local.credentials : path if value != null && !can(regex(local.sm_pattern, tostring(value)))
  ])
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

# What the config must satisfy before anything is planned: `terraform plan` fails with the
# message (a precondition, not a check block's warning).
resource "terraform_data" "config_checks" {
  input = {
    credentials           = sort(keys(local.credentials))
    max_delivery_attempts = local.pubsub.max_delivery_attempts
    minimum_backoff_s     = local.pubsub.minimum_backoff_s
    maximum_backoff_s     = local.pubsub.maximum_backoff_s
  }

  lifecycle {
    precondition {
      condition     = length(local.plain_credentials) == 0
      error_message = "Credentials in the config must be Secret Manager references (sm://projects/PROJECT/secrets/NAME/versions/VERSION); these are not: ${join(", ", local.plain_credentials)}. The config is stored in the offsite-config secret and in Terraform state, and a function has no env:/file: credentials to read."
    }
    # Pub/Sub's limits for a subscription's retry and dead-letter policy, which shared.config_validate also enforces.
    precondition {
      condition     = local.pubsub.max_delivery_attempts >= 5 && local.pubsub.max_delivery_attempts <= 100
      error_message = "pubsub.max_delivery_attempts is ${local.pubsub.max_delivery_attempts}; Pub/Sub takes 5 to 100."
    }
    precondition {
      condition     = local.pubsub.minimum_backoff_s >= 0 && local.pubsub.minimum_backoff_s <= local.pubsub.maximum_backoff_s && local.pubsub.maximum_backoff_s <= 600
      error_message = "pubsub: minimum_backoff_s=${local.pubsub.minimum_backoff_s}, maximum_backoff_s=${local.pubsub.maximum_backoff_s}; Pub/Sub takes 0 <= minimum <= maximum <= 600 seconds."
    }
    precondition {
      condition     = length(local.bad_notification_channels) == 0
      error_message = "alerts.notification_channels entries must be an email address or a channel name projects/PROJECT/notificationChannels/ID; these are not: ${join(", ", local.bad_notification_channels)}."
    }
  }
}
