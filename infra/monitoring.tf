# Cloud Monitoring: three alert policies and one dashboard, notifying the channels of the
# config's alerts.notification_channels (an email address gets a channel created here; a
# projects/P/notificationChannels/ID is used as it is). Without channels the policies still
# open incidents in the console.
#
#   dead letters   pubsub.googleapis.com/subscription/num_undelivered_messages > 0 on any
#                  <feed>-dlq-sub: a message failed max_delivery_attempts times.
#   error rate     run.googleapis.com/request_count with response_code_class 4xx/5xx over all
#                  requests, per function (2nd-gen functions are Cloud Run services): raised
#                  errors (redeliveries) and 429s (no instance free within 60 s).
#   incomplete     a run with no verify result past verify.deadline_minutes: the verify sweep
#                  then publishes status "incomplete" (log-based metric offsite_results).
# Log-based metrics read the functions' structured logs (shared/log.py: jsonPayload.message,
# .status, .destination, .size).

locals {
  notification_entries      = coalesce(try(local.config.alerts.notification_channels, null), [])
  notification_channel_re   = "^projects/[^/]+/notificationChannels/[^/]+$"
  notification_email_re     = "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$"
  notification_emails       = toset([for c in local.notification_entries : c if can(regex(local.notification_email_re, c))])
  existing_notification_ids = [for c in local.notification_entries : c if can(regex(local.notification_channel_re, c))]
  bad_notification_channels = [
    for c in local.notification_entries : c if !can(regex(local.notification_email_re, c)) && !can(regex(local.notification_channel_re, c))
  ]
  notification_channels = concat(
    local.existing_notification_ids,
    [for email in local.notification_emails : google_monitoring_notification_channel.email[email].id],
  )

  deployed_services       = sort([for fn in values(local.functions) : fn.deployed_name])
  services_filter         = join(", ", [for name in local.deployed_services : "\"${name}\""])
  dead_letter_subs_filter = join(", ", [for topic in sort(keys(local.dead_letter_topics)) : "\"${topic}-sub\""])
  error_rate_threshold    = 0.1
  deadline_minutes        = coalesce(try(local.config.verify.deadline_minutes, null), 120)

  # Log entries of our functions (Cloud Run services).
  function_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(${join(" OR ", [for name in local.deployed_services : "\"${name}\""])})"
}

resource "google_monitoring_notification_channel" "email" {
  for_each = local.notification_emails

  display_name = "offsite alerts: ${each.key}"
  type         = "email"
  labels = {
    email_address = each.key
  }

  depends_on = [google_project_service.api]
}

# Every result a stage reports (shared.reporting.results logs "result published").
resource "google_logging_metric" "results" {
  name        = "offsite_results"
  description = "offsite results published on verify-results, by status and destination"
  filter      = "${local.function_logs} AND jsonPayload.message=\"result published\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key        = "status"
      value_type = "STRING"
    }
    labels {
      key        = "destination"
      value_type = "STRING"
    }
  }

  label_extractors = {
    status      = "EXTRACT(jsonPayload.status)"
    destination = "EXTRACT(jsonPayload.destination)"
  }

  depends_on = [google_project_service.api]
}

# Bytes delivered per destination (shared.delivery.operation logs "delivered" with size).
resource "google_logging_metric" "delivered_bytes" {
  name            = "offsite_delivered_bytes"
  description     = "Bytes of each file offsite delivered, by destination"
  filter          = "${local.function_logs} AND jsonPayload.message=\"delivered\""
  value_extractor = "EXTRACT(jsonPayload.size)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "By"

    labels {
      key        = "destination"
      value_type = "STRING"
    }
  }

  label_extractors = {
    destination = "EXTRACT(jsonPayload.destination)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 2
      scale              = 1024
    }
  }

  depends_on = [google_project_service.api]
}

locals {
  # Alerts that fire as soon as one series counts anything (a threshold of 0, no duration).
  above_zero_alerts = {
    dead_letters = {
      display_name = "offsite: messages in a dead-letter queue"
      severity     = "ERROR"
      content      = "A message failed ${local.pubsub.max_delivery_attempts} deliveries and sits in a dead-letter subscription. Inspect with `offsite dlq list`, fix the cause, then `offsite dlq replay` (docs/deploy.md, section 7)."
      condition    = "undelivered messages in a <feed>-dlq-sub"
      filter       = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id = one_of(${local.dead_letter_subs_filter})"
      aligner      = "ALIGN_MAX"
      group_by     = null # one series per subscription
    }
    incomplete_runs = {
      display_name = "offsite: run without a verify result past its deadline"
      severity     = "ERROR"
      content      = "A run had no verify result ${local.deadline_minutes} minutes after it started (verify.deadline_minutes); the verify sweep reported it `incomplete`. See `offsite status` and the dead-letter queues."
      condition    = "verify results with status incomplete"
      filter       = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.results.name}\" AND metric.label.status = \"incomplete\""
      aligner      = "ALIGN_SUM"
      group_by     = ["metric.label.destination"]
    }
  }
}

resource "google_monitoring_alert_policy" "above_zero" {
  for_each = local.above_zero_alerts

  display_name          = each.value.display_name
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = each.value.severity

  documentation {
    mime_type = "text/markdown"
    content   = each.value.content
  }

  conditions {
    display_name = each.value.condition

    condition_threshold {
      filter          = each.value.filter
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.group_by == null ? null : "REDUCE_SUM"
        group_by_fields      = each.value.group_by
      }

      trigger {
        count = 1
      }
    }
  }

  depends_on = [google_project_service.api]
}

moved {
  from = google_monitoring_alert_policy.dead_letters
  to   = google_monitoring_alert_policy.above_zero["dead_letters"]
}

moved {
  from = google_monitoring_alert_policy.incomplete_runs
  to   = google_monitoring_alert_policy.above_zero["incomplete_runs"]
}

resource "google_monitoring_alert_policy" "function_errors" {
  display_name          = "offsite: function error rate"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "WARNING"

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${local.error_rate_threshold * 100}% of a function's requests failed for 10 minutes (5xx: the function raised and the event is redelivered; 429: no instance was free). Logs: `gcloud functions logs read FUNCTION --gen2`."
  }

  conditions {
    display_name = "4xx/5xx share of requests per function"

    condition_threshold {
      filter                  = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND resource.label.service_name = one_of(${local.services_filter}) AND metric.label.response_code_class = one_of(\"4xx\", \"5xx\")"
      denominator_filter      = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND resource.label.service_name = one_of(${local.services_filter})"
      comparison              = "COMPARISON_GT"
      threshold_value         = local.error_rate_threshold
      duration                = "600s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_monitoring_dashboard" "pipeline" {
  dashboard_json = jsonencode({
    displayName = "offsite"
    mosaicLayout = {
      columns = 12
      tiles = [
        for i, widget in local.dashboard_widgets : {
          xPos = (i % 2) * 6, yPos = floor(i / 2) * 4, width = 6, height = 4, widget = widget
        }
      ]
    }
  })

  depends_on = [google_project_service.api, google_logging_metric.results, google_logging_metric.delivered_bytes]
}

locals {
  results_metric = "metric.type=\"logging.googleapis.com/user/offsite_results\" resource.type=\"cloud_run_revision\""
  # Results per hour, one series per destination.
  hourly_per_destination = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.destination"] }
  # One chart per tile: its title, plot type and time series query.
  dashboard_charts = [
    {
      title    = "Runs verified per destination (results in_sync / mismatch / incomplete)"
      plotType = "STACKED_BAR"
      query = { timeSeriesFilter = {
        filter      = "${local.results_metric} metric.label.status=one_of(\"in_sync\",\"mismatch\",\"incomplete\")"
        aggregation = local.hourly_per_destination
      } }
    },
    {
      title    = "Bytes delivered per destination"
      plotType = "STACKED_BAR"
      query = {
        prometheusQuery = "sum by (destination) (increase(logging_googleapis_com:user_offsite_delivered_bytes_sum{monitored_resource=\"cloud_run_revision\"}[1h]))"
      }
    },
    {
      title    = "Failures per destination (mismatch / incomplete / failed / rejected)"
      plotType = "STACKED_BAR"
      query = { timeSeriesFilter = {
        filter      = "${local.results_metric} metric.label.status=one_of(\"mismatch\",\"incomplete\",\"failed\",\"rejected\")"
        aggregation = local.hourly_per_destination
      } }
    },
    {
      title    = "Messages in dead-letter queues"
      plotType = "LINE"
      query = { timeSeriesFilter = {
        filter      = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" resource.type=\"pubsub_subscription\" resource.label.subscription_id=one_of(${local.dead_letter_subs_filter})"
        aggregation = { alignmentPeriod = "300s", perSeriesAligner = "ALIGN_MAX", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["resource.label.subscription_id"] }
      } }
    },
  ]
  dashboard_widgets = [
    for chart in local.dashboard_charts : {
      title   = chart.title
      xyChart = { dataSets = [{ plotType = chart.plotType, timeSeriesQuery = chart.query }] }
    }
  ]
}
