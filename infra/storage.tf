# The exports bucket (where every run's files and manifest land) and the bucket that holds
# the function source archives built by `offsite package`.

resource "google_storage_bucket" "exports" {
  #checkov:skip=CKV_GCP_78:Versioning stays off: every export object is written once (if_generation_match=0) under a run folder, so there is nothing to roll back; noncurrent versions would only keep deleted partner data past the expiration_days lifecycle rule.
  #checkov:skip=CKV_GCP_62:Access is logged by Cloud Audit Logs (enable Data Access logs for storage.googleapis.com); legacy usage logs would need a second bucket with no reader.
  name                        = local.bucket
  location                    = upper(local.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = false
  }

  # No soft delete: a deleted or overwritten export would otherwise be kept (and billed) for
  # 7 days more, like the noncurrent versions above; 0 turns it off
  # (https://cloud.google.com/storage/docs/soft-delete, .../disable-soft-delete).
  soft_delete_policy {
    retention_duration_seconds = 0
  }

  # Exports are staging copies: Box and the SFTP partners hold the deliveries.
  lifecycle_rule {
    condition {
      age = local.expiration_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle {
    precondition {
      condition     = local.project != null && local.bucket != null
      error_message = "Set `project` and `bucket` in the offsite config (or -var project=... -var bucket=...)."
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_78:Versioning is not needed: each archive is uploaded under a new name carrying its md5, so an older archive is never overwritten.
  #checkov:skip=CKV_GCP_62:Access is logged by Cloud Audit Logs; the bucket is read only by the Cloud Functions build.
  name                        = local.source_bucket
  location                    = upper(local.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = false
  }

  depends_on = [google_project_service.api]
}

locals {
  archives_dir = startswith(var.source_archives_dir, "/") ? var.source_archives_dir : "${path.module}/${var.source_archives_dir}"
}

resource "google_storage_bucket_object" "archive" {
  for_each = local.archive_sources

  # The md5 in the name makes a changed archive a new object, which redeploys the functions built from it.
  name         = "functions/${each.key}-${filemd5("${local.archives_dir}/${each.key}.zip")}.zip"
  bucket       = google_storage_bucket.sources.name
  source       = "${local.archives_dir}/${each.key}.zip"
  content_type = "application/zip"
}
