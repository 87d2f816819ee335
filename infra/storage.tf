# The exports, state and source archive (`offsite package`) buckets.

locals {
  # The exports bucket (where every run's files and manifest land), offsite's own state
  # (verify markers, the run history for `offsite status`, queued alerts and transfer
  # checkpoints) and the function source archives. No trigger listens on the state bucket, so
  # no state write starts an upload function (in the exports bucket each such write reached
  # all three storage-triggered functions).
  buckets = {
    # Exports are staging copies: Box and the SFTP partners hold the deliveries.
    exports = { name = local.bucket, expire_after_days = local.expiration_days, soft_delete = false }
    # The history outlives the exports it describes (`offsite status --since 90d`).
    state = { name = local.state_bucket, expire_after_days = max(local.expiration_days, 90), soft_delete = false }
    # Each archive is uploaded under a new name carrying its md5 and kept.
    sources = { name = local.source_bucket, expire_after_days = null, soft_delete = true }
  }
}

resource "google_storage_bucket" "data" {
  #checkov:skip=CKV_GCP_78:Versioning stays off: every export object is written once (if_generation_match=0) under a run folder, markers are claimed once, the history is append-only and each archive has a new name carrying its md5; there is nothing to roll back, and noncurrent versions would only keep deleted partner data past the lifecycle rule.
  #checkov:skip=CKV_GCP_62:Access is logged by Cloud Audit Logs (enable Data Access logs for storage.googleapis.com); legacy usage logs would need a second bucket with no reader.
  for_each = local.buckets

  name                        = each.value.name
  location                    = upper(local.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = false
  }

  # No soft delete on exports and state: a deleted or overwritten object would otherwise be
  # kept (and billed) for 7 days more, like the noncurrent versions above; 0 turns it off
  # (https://cloud.google.com/storage/docs/soft-delete, .../disable-soft-delete).
  dynamic "soft_delete_policy" {
    for_each = each.value.soft_delete ? [] : [0]

    content {
      retention_duration_seconds = 0
    }
  }

  dynamic "lifecycle_rule" {
    for_each = each.value.expire_after_days == null ? [] : [each.value.expire_after_days]

    content {
      condition {
        age = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
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

# The buckets were separate resources before; keep the deployed ones (docs/deploy.md, "Addresses").
moved {
  from = google_storage_bucket.exports
  to   = google_storage_bucket.data["exports"]
}

moved {
  from = google_storage_bucket.state
  to   = google_storage_bucket.data["state"]
}

moved {
  from = google_storage_bucket.sources
  to   = google_storage_bucket.data["sources"]
}

locals {
  archives_dir = startswith(var.source_archives_dir, "/") ? var.source_archives_dir : "${path.module}/${var.source_archives_dir}"
}

resource "google_storage_bucket_object" "archive" {
  for_each = local.archive_sources

  # The md5 in the name makes a changed archive a new object, which redeploys the functions built from it.
  name         = "functions/${each.key}-${filemd5("${local.archives_dir}/${each.key}.zip")}.zip"
  bucket       = google_storage_bucket.data["sources"].name
  source       = "${local.archives_dir}/${each.key}.zip"
  content_type = "application/zip"
}
