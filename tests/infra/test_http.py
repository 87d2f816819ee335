"""The HTTP trigger in infra/: invoked only by the config's http.invokers, never publicly, and
told its own URLs as the token audiences it accepts."""

from __future__ import annotations

import pytest
import yaml

from shared import topology
from tests.infra.conftest import EXAMPLE_CONFIG
from tests.infra.hcl_eval import Module

HTTP = [fn for fn in topology.FUNCTIONS if fn.http]


def _with_invokers(*members: str) -> str:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["http"] = {"invokers": list(members)}
    return yaml.safe_dump(config)


def test_the_topology_has_one_http_function_without_triggers() -> None:
    (spec,) = HTTP
    assert spec.name == "http_trigger" and spec.triggers == ()
    assert not [s for s in topology.subscriptions() if s.function == spec.name]


def test_configured_invokers_get_run_invoker_on_the_http_trigger_only(infra) -> None:  # type: ignore[no-untyped-def]
    members = ("user:ops@example.com", "serviceAccount:sched@bqx-ml.iam.gserviceaccount.com", "group:dr@example.com")
    module: Module = infra(_with_invokers(*members))
    grants = module.instances("google_cloud_run_v2_service_iam_member", "http_invoker")
    assert {g["member"] for g in grants.values()} == set(members)
    for grant in grants.values():
        assert grant["role"] == "roles/run.invoker"
        assert str(grant["name"]) == 'google_cloudfunctions2_function.fn["http_trigger"].service_config[0].service'
    # the triggers' account invokes the event-driven functions, not the HTTP one
    assert "http_trigger" not in module.instances("google_cloud_run_v2_service_iam_member", "trigger_invoker")


def test_no_invokers_no_bindings(example: Module) -> None:
    assert example.instances("google_cloud_run_v2_service_iam_member", "http_invoker") == {}


@pytest.mark.parametrize("public", ["allUsers", "allAuthenticatedUsers"])
def test_a_public_invoker_fails_the_plan(infra, public: str) -> None:  # type: ignore[no-untyped-def]
    module: Module = infra(_with_invokers("user:ops@example.com", public))
    checks = [
        check
        for found in module.preconditions("google_cloud_run_v2_service_iam_member", "http_invoker").values()
        for check in found
    ]
    assert checks and all(condition is False for condition, _ in checks)
    assert public in str(checks[0][1]) and "never public" in str(checks[0][1])
    fine: Module = infra(_with_invokers("user:ops@example.com"))
    checks = [
        check
        for found in fine.preconditions("google_cloud_run_v2_service_iam_member", "http_invoker").values()
        for check in found
    ]
    assert checks and all(condition is True for condition, _ in checks)


def test_the_function_accepts_tokens_for_its_own_urls_and_is_reachable_from_outside(example: Module) -> None:
    fn = example.instances("google_cloudfunctions2_function", "fn")["http_trigger"]
    (service,) = fn["service_config"]
    assert service["ingress_settings"] == "ALLOW_ALL"
    assert service["timeout_seconds"] == 3600
    assert not fn.get("event_trigger")
    audiences = str(service["environment_variables"]["OFFSITE__HTTP__AUDIENCES"])
    assert "https://us-central1-bqx-ml.cloudfunctions.net/http-trigger," in audiences
    assert "https://http-trigger-${data.google_project.this.number}.us-central1.run.app" in audiences
    others = example.instances("google_cloudfunctions2_function", "fn")["verify"]["service_config"][0]
    assert "OFFSITE__HTTP__AUDIENCES" not in others["environment_variables"]
    # Cloud Run forwards the checked token without its signature: the function trusts that only here
    assert service["environment_variables"]["OFFSITE__HTTP__PLATFORM_VERIFIED"] == "true"
    assert "OFFSITE__HTTP__PLATFORM_VERIFIED" not in others["environment_variables"]
