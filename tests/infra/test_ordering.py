"""What Terraform must do in order: data sources after the APIs, config versions replaced safely."""

from __future__ import annotations

from tests.infra.hcl_eval import Module


def test_data_sources_are_read_after_the_apis_they_need(example: Module) -> None:
    # google_project needs Cloud Resource Manager, the storage service account the Storage API.
    assert set(example.data) == {("google_project", "this"), ("google_storage_project_service_account", "gcs")}
    for rtype, name in example.data:
        assert example.depends_on("data", rtype, name) == ["google_project_service.api"], (rtype, name)
    apis = set(example.local("apis"))
    assert {"cloudresourcemanager.googleapis.com", "storage.googleapis.com"} <= apis
    assert {"monitoring.googleapis.com", "logging.googleapis.com"} <= apis  # monitoring.tf


def test_config_secret_versions_are_created_before_the_old_one_is_destroyed(example: Module) -> None:
    assert example.lifecycle("google_secret_manager_secret_version", "config") == {"create_before_destroy": True}
