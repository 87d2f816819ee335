variable "config_file" {
  description = "Path of the offsite YAML (relative to infra/ or absolute). Ignored when config_yaml is set."
  type        = string
  default     = "../offsite.yaml"
}

variable "config_yaml" {
  description = "The offsite YAML itself (wins over config_file). Stored as the offsite-config secret and mounted into every function at /etc/offsite/offsite.yaml; reference credentials as sm://, never inline them."
  type        = string
  default     = null
}

variable "project" {
  description = "Google Cloud project id; default: the config's `project`."
  type        = string
  default     = null
}

variable "region" {
  description = "Region of the functions, the buckets, Eventarc and Cloud Scheduler; default: the config's `region`, else us-central1."
  type        = string
  default     = null
}

variable "bucket" {
  description = "Name of the GCS exports bucket; default: the config's `bucket`."
  type        = string
  default     = null
}

variable "source_bucket" {
  description = "Name of the bucket holding the function source archives; default: <project>-offsite-sources."
  type        = string
  default     = null
}

variable "source_archives_dir" {
  description = "Folder with the archives built by `offsite package` (relative to infra/ or absolute)."
  type        = string
  default     = "../dist/functions"
}

variable "alert_webhook_secret" {
  description = "Secret Manager secret id for the Slack incoming-webhook URL. When set, the secret is created (empty) and the functions get OFFSITE__ALERTS__SLACK_WEBHOOK_URL=sm://projects/P/secrets/ID/versions/latest, overriding the config's alerts.slack_webhook_url."
  type        = string
  default     = null

  validation {
    condition     = var.alert_webhook_secret == null || can(regex("^[A-Za-z0-9_-]{1,255}$", var.alert_webhook_secret))
    error_message = "alert_webhook_secret must be a Secret Manager secret id: letters, digits, '_' and '-', at most 255 characters."
  }
}

variable "query_export_datasets" {
  description = "Extra datasets (\"dataset\" or \"project.dataset\") that the SQL of query exports reads; the exporter gets bigquery.dataViewer on each."
  type        = list(string)
  default     = []
}

variable "runtime" {
  description = "Cloud Functions Python runtime; the archives' requirements are pinned and import-checked on Python 3.11."
  type        = string
  default     = "python311"
}

variable "enable_apis" {
  description = "Enable the Google APIs the pipeline uses (never disabled on destroy)."
  type        = bool
  default     = true
}

variable "attach_eventarc_dead_letters" {
  description = "Run infra/scripts/attach-dead-letter.sh (needs the gcloud binary, not a gcloud login: it uses Terraform's credentials) to give the Eventarc-managed GCS trigger subscriptions the topology's retry and dead-letter policy and a 600 s ack deadline."
  type        = bool
  default     = true
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete the buckets even when they still hold objects."
  type        = bool
  default     = false
}

variable "impersonate_service_account" {
  description = "Service account that Terraform (the google provider) and the dead-letter script's gcloud both act as; null: your Application Default Credentials or GOOGLE_OAUTH_ACCESS_TOKEN."
  type        = string
  default     = null
}
