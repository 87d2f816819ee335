# One Cloud Scheduler job per scheduled dataset and query export of the config (the four dataset
# backup schedules in offsite.example.yaml), plus the verify sweep. Each publishes the
# request message on its topic; a redelivered message keeps its id and so its run_id.

resource "google_cloud_scheduler_job" "job" {
  for_each = local.scheduler_jobs

  name        = each.key
  region      = local.region
  description = each.value.description
  schedule    = each.value.schedule
  time_zone   = each.value.time_zone

  retry_config {
    retry_count = 3
  }

  pubsub_target {
    topic_name = google_pubsub_topic.pipeline[each.value.topic].id
    data       = base64encode(each.value.message)
    attributes = {
      origin = "cloud-scheduler"
      job    = each.key
    }
  }

  depends_on = [google_project_service.api]
}
