locals {
  apis = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com", # ingest: the Storage Write API (load_path write_api)
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "api" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project = local.project
  service = each.key

  # Other workloads may use these APIs: destroying offsite must not switch them off.
  disable_on_destroy = false
}

# Read after the APIs it needs are on (Cloud Resource Manager); on a fresh project the read
# waits for apply instead of failing the plan.
data "google_project" "this" {
  project_id = local.project

  depends_on = [google_project_service.api]
}
