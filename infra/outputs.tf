output "functions" {
  description = "Deployed function name -> Cloud Run URL (internal ingress; invoked by Pub/Sub and Eventarc only)."
  value       = { for name, fn in google_cloudfunctions2_function.fn : fn.name => fn.service_config[0].uri }
}

output "exports_bucket" {
  value = google_storage_bucket.data["exports"].name
}

output "topics" {
  value = sort(local.topics)
}

output "dead_letter_subscriptions" {
  description = "Pull these to inspect failed messages: gcloud pubsub subscriptions pull <name> --auto-ack=false"
  value       = sort([for sub in google_pubsub_subscription.dead_letter : sub.name])
}

output "secrets_to_fill" {
  description = "Created empty: add a version to each with gcloud secrets versions add <id> --data-file=<file>."
  value       = sort(tolist(local.managed_secrets))
}

output "scheduler_jobs" {
  value = { for name, job in google_cloud_scheduler_job.job : name => "${job.schedule} (${job.time_zone})" }
}

output "service_accounts" {
  value = merge(
    { for name, sa in google_service_account.function : name => sa.email },
    { trigger = google_service_account.trigger.email, build = google_service_account.build.email },
  )
}
