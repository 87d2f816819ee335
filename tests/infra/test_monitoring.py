"""Cloud Monitoring in infra/monitoring.tf: alert policies, log-based metrics, the dashboard."""

from __future__ import annotations

import json

import yaml

from shared import topology
from shared.config_load import load_config
from tests.infra.conftest import EXAMPLE_CONFIG
from tests.infra.hcl_eval import Module

DLQ_SUBS = sorted(
    [f"{s.dead_letter_topic}-sub" for s in topology.subscriptions()] + [f"{topology.REPORTS_DEAD_LETTER_TOPIC}-sub"]
)
SERVICES = sorted(fn.name.replace("_", "-") for fn in topology.FUNCTIONS)


def _one_of(names: list[str]) -> str:
    return "one_of(" + ", ".join(f'"{n}"' for n in names) + ")"


def _policy(module: Module, name: str) -> dict:
    """An alert policy: a resource of its own, or an instance of the above-zero ones."""
    policies = module.instances("google_monitoring_alert_policy", "above_zero")
    if name in policies:
        return policies[name]
    (policy,) = module.instances("google_monitoring_alert_policy", name).values()
    return policy


def _with_channels(infra, channels: list[str]) -> Module:  # type: ignore[no-untyped-def]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["alerts"]["notification_channels"] = channels
    return infra(yaml.safe_dump(config))


def test_dead_letter_backlog_above_zero_alerts(example: Module) -> None:
    policy = _policy(example, "dead_letters")
    (condition,) = policy["conditions"]
    (threshold,) = condition["condition_threshold"]
    assert threshold["filter"] == (
        'resource.type = "pubsub_subscription" AND '
        'metric.type = "pubsub.googleapis.com/subscription/num_undelivered_messages" AND '
        f"resource.label.subscription_id = {_one_of(DLQ_SUBS)}"
    )
    assert len(DLQ_SUBS) == 18  # one per subscription or trigger in shared/topology.py, and the reports'
    assert (threshold["comparison"], threshold["threshold_value"], threshold["duration"]) == ("COMPARISON_GT", 0, "0s")
    assert threshold["aggregations"][0]["per_series_aligner"] == "ALIGN_MAX"


def test_function_error_rate_alerts_per_function(example: Module) -> None:
    (condition,) = _policy(example, "function_errors")["conditions"]
    (threshold,) = condition["condition_threshold"]
    base = (
        'resource.type = "cloud_run_revision" AND metric.type = "run.googleapis.com/request_count" AND '
        f"resource.label.service_name = {_one_of(SERVICES)}"
    )
    assert threshold["filter"] == base + ' AND metric.label.response_code_class = one_of("4xx", "5xx")'
    assert threshold["denominator_filter"] == base
    assert threshold["comparison"] == "COMPARISON_GT" and 0 < threshold["threshold_value"] < 1
    for key in ("aggregations", "denominator_aggregations"):
        (agg,) = threshold[key]
        assert agg["per_series_aligner"] == "ALIGN_RATE" and agg["cross_series_reducer"] == "REDUCE_SUM"
        assert agg["group_by_fields"] == ["resource.label.service_name"]


def test_run_without_verify_result_past_its_deadline_alerts(example: Module) -> None:
    (metric,) = example.instances("google_logging_metric", "results").values()
    assert metric["name"] == "offsite_results"
    assert metric["filter"].endswith('AND jsonPayload.message="result published"')
    for name in SERVICES:
        assert f'"{name}"' in metric["filter"]
    assert metric["label_extractors"] == {
        "status": "EXTRACT(jsonPayload.status)",
        "destination": "EXTRACT(jsonPayload.destination)",
    }
    policy = _policy(example, "incomplete_runs")
    (condition,) = policy["conditions"]
    (threshold,) = condition["condition_threshold"]
    assert str(threshold["filter"]) == (
        'resource.type = "cloud_run_revision" AND '
        'metric.type = "logging.googleapis.com/user/${google_logging_metric.results.name}" AND '
        'metric.label.status = "incomplete"'
    )
    assert (threshold["comparison"], threshold["threshold_value"]) == ("COMPARISON_GT", 0)
    assert "120 minutes" in policy["documentation"][0]["content"]  # verify.deadline_minutes


def test_log_metrics_read_what_the_code_logs() -> None:
    """The messages and fields the metrics extract are the ones shared/ logs."""
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2] / "shared"
    results = (shared / "reporting" / "results.py").read_text()
    assert '"result published"' in results and "status=result.status" in results
    assert "destination=result.destination" in results
    operation = (shared / "delivery" / "operation.py").read_text()
    assert '"delivered"' in operation and "size=result.size" in operation
    failures = (shared / "stages" / "failures.py").read_text()
    assert "log.bind(**extra)" in failures  # binds the destination of each delivery
    deliver = (shared / "stages" / "deliver.py").read_text()
    assert '"destination": str(destination_id)' in deliver


def test_dashboard_shows_runs_bytes_and_failures_per_destination(example: Module) -> None:
    (dashboard,) = example.instances("google_monitoring_dashboard", "pipeline").values()
    board = json.loads(dashboard["dashboard_json"])
    tiles = board["mosaicLayout"]["tiles"]
    titles = [t["widget"]["title"] for t in tiles]
    assert any(t.startswith("Runs verified per destination") for t in titles)
    assert any(t.startswith("Bytes delivered per destination") for t in titles)
    assert any(t.startswith("Failures per destination") for t in titles)
    by_title = {t["widget"]["title"].split(" (")[0]: t["widget"]["xyChart"]["dataSets"][0] for t in tiles}
    runs = by_title["Runs verified per destination"]["timeSeriesQuery"]["timeSeriesFilter"]
    assert "logging.googleapis.com/user/offsite_results" in runs["filter"]
    assert runs["aggregation"]["groupByFields"] == ["metric.label.destination"]
    failures = by_title["Failures per destination"]["timeSeriesQuery"]["timeSeriesFilter"]
    assert 'one_of("mismatch","incomplete","failed","rejected")' in failures["filter"]
    bytes_query = by_title["Bytes delivered per destination"]["timeSeriesQuery"]["prometheusQuery"]
    assert "user_offsite_delivered_bytes_sum" in bytes_query and "by (destination)" in bytes_query
    (delivered,) = example.instances("google_logging_metric", "delivered_bytes").values()
    assert delivered["value_extractor"] == "EXTRACT(jsonPayload.size)"
    assert delivered["metric_descriptor"][0]["value_type"] == "DISTRIBUTION"
    # tiles do not overlap on the 12-column grid
    cells = {(t["xPos"], t["yPos"]) for t in tiles}
    assert len(cells) == len(tiles) and all(t["xPos"] + t["width"] <= 12 for t in tiles)


def test_notification_channels_come_from_the_config(infra, example: Module, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert example.instances("google_monitoring_notification_channel", "email") == {}
    assert _policy(example, "dead_letters")["notification_channels"] == []

    existing = "projects/bqx-ml/notificationChannels/123"
    module = _with_channels(infra, ["ops@example.com", existing])
    (email,) = module.instances("google_monitoring_notification_channel", "email").values()
    assert (email["type"], email["labels"]) == ("email", {"email_address": "ops@example.com"})
    for name in ("dead_letters", "function_errors", "incomplete_runs"):
        channels = [str(c) for c in _policy(module, name)["notification_channels"]]
        assert channels == [existing, 'google_monitoring_notification_channel.email["ops@example.com"].id']
    assert all(ok for ok, _ in module.preconditions("terraform_data", "config_checks")[None])

    # The same YAML is a valid offsite config for the functions (the field is in shared.config).
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["alerts"]["notification_channels"] = ["ops@example.com"]
    (tmp_path / "offsite.yaml").write_text(yaml.safe_dump(config))
    assert load_config(tmp_path / "offsite.yaml").alerts.notification_channels == ("ops@example.com",)


def test_a_notification_channel_that_is_neither_fails_the_plan(infra) -> None:  # type: ignore[no-untyped-def]
    module = _with_channels(infra, ["#ops-channel"])
    failed = [m for ok, m in module.preconditions("terraform_data", "config_checks")[None] if not ok]
    assert len(failed) == 1 and "#ops-channel" in failed[0]
