terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
  }
}

provider "google" {
  project                     = local.project
  region                      = local.region
  impersonate_service_account = var.impersonate_service_account

  default_labels = {
    app = "offsite"
  }
}
