# Credentials the config references (sm://projects/P/secrets/S/versions/V in this project)
# are created EMPTY: their values never pass through Terraform state. Fill them with
#   gcloud secrets versions add S --data-file=FILE
# (docs/deploy.md). The config itself is a secret too, because a 2nd-gen function can
# mount a secret version as a file: it holds only references, never credential values.

resource "google_secret_manager_secret" "credential" {
  for_each = local.managed_secrets

  secret_id = each.key
  labels    = { role = "credential" }

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret" "config" {
  secret_id = "offsite-config"
  labels    = { role = "config" }

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_version" "config" {
  secret      = google_secret_manager_secret.config.id
  secret_data = local.config_yaml

  # A changed config is a new version: create it and roll the functions onto it before the
  # version their running revisions mount is destroyed.
  lifecycle {
    create_before_destroy = true
  }

  depends_on = [terraform_data.config_checks]
}

resource "google_secret_manager_secret_iam_member" "config_reader" {
  for_each = local.service_account_ids

  secret_id = google_secret_manager_secret.config.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.key].email}"
}
