"""Least privilege: who may do what, read from the evaluated IAM resources of infra/."""

from __future__ import annotations

import re
from collections import defaultdict

import yaml

from shared import topology
from tests.infra.conftest import EXAMPLE_CONFIG, INFRA
from tests.infra.hcl_eval import Module, Ref, Template

SEED_DATASETS = ("bqx_ml_v3_models", "bqx_ml_v3_features", "bqx_ml_v3_predictions", "bqx_ml_v3_analytics_v2")

FORBIDDEN = {
    "roles/owner",
    "roles/editor",
    "roles/viewer",
    "roles/storage.admin",
    "roles/storage.objectAdmin",
    "roles/iam.serviceAccountUser",
    "roles/pubsub.admin",
    "roles/secretmanager.admin",
    "roles/bigquery.admin",
    "roles/bigquery.dataEditor",
    "roles/bigquery.dataOwner",
    "roles/run.admin",
    "roles/cloudfunctions.admin",
}


def _iam(module: Module) -> list[tuple[str, dict]]:
    """(resource address, attributes) of every IAM member binding."""
    out = []
    for rtype, name in module.resources:
        if rtype.endswith("_iam_member"):
            for key, attrs in module.instances(rtype, name).items():
                out.append((f"{rtype}.{name}[{key!r}]", attrs))
    return out


def _function_of(member: object) -> str | None:
    """'export_table' for serviceAccount:${google_service_account.function["export_table"].email}."""
    if isinstance(member, Template) and len(member.parts) == 2 and member.parts[0] == "serviceAccount:":
        ref = member.parts[1]
        if (
            isinstance(ref, Ref)
            and ref.parts[:2] == ("google_service_account", "function")
            and ref.parts[3:] == ("email",)
        ):
            return ref.parts[2].value
    return None


def _grants_by_function(module: Module, rtype: str, name: str, target: str) -> dict[str, set]:
    grants: dict[str, set] = defaultdict(set)
    for attrs in module.instances(rtype, name).values():
        fn = _function_of(attrs["member"])
        assert fn is not None, f"{rtype}.{name} grants to {attrs['member']} instead of a function account"
        value = attrs[target]
        grants[fn].add((attrs["role"], value if isinstance(value, str) else str(value)))
    return grants


# The one documented exception: the build account's roles/storage.objectAdmin
# (https://cloud.google.com/run/docs/configuring/services/build-service-account), held only on
# Cloud Functions' own gcf-v2-sources staging bucket.
BUILD_STAGING = "google_project_iam_member.build_reads_staged_sources[None]"


def test_no_broad_roles_anywhere(example: Module) -> None:
    for address, attrs in _iam(example):
        role = attrs["role"]
        if address == BUILD_STAGING:
            assert role == "roles/storage.objectAdmin"
            assert str(attrs["member"]) == "serviceAccount:${google_service_account.build.email}"
            assert "buckets/gcf-v2-sources-" in str(attrs["condition"][0]["expression"])
            continue
        assert role not in FORBIDDEN, f"{address} grants {role}"
        assert not str(role).endswith((".admin", "Admin")), f"{address} grants an admin role {role}"
    custom = example.instances("google_project_iam_custom_role", "object_metadata_writer")[None]
    assert sorted(custom["permissions"]) == ["storage.objects.get", "storage.objects.update"]
    replacer = example.instances("google_project_iam_custom_role", "object_replacer")[None]
    assert sorted(replacer["permissions"]) == [
        "storage.objects.create",
        "storage.objects.delete",
        "storage.objects.get",
    ]
    lister = example.instances("google_project_iam_custom_role", "object_lister")[None]
    assert lister["permissions"] == ["storage.objects.list"]


def test_project_level_roles_are_the_few_that_cannot_be_narrower(example: Module) -> None:
    bindings = set()
    for rtype, name in example.resources:
        if rtype == "google_project_iam_member":
            for attrs in example.instances(rtype, name).values():
                bindings.add((attrs["role"], str(attrs["member"]), bool(attrs.get("condition"))))
    assert bindings == {
        ("roles/bigquery.jobUser", 'serviceAccount:${google_service_account.function["export_table"].email}', False),
        ("roles/bigquery.jobUser", 'serviceAccount:${google_service_account.function["ingest_sqlite"].email}', False),
        ("roles/bigquery.jobUser", 'serviceAccount:${google_service_account.function["restore_drill"].email}', False),
        ("roles/eventarc.eventReceiver", "serviceAccount:${google_service_account.trigger.email}", False),
        (
            "roles/pubsub.publisher",
            "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}",
            False,
        ),
        ("roles/logging.logWriter", "serviceAccount:${google_service_account.build.email}", False),
        ("roles/storage.objectAdmin", "serviceAccount:${google_service_account.build.email}", True),
    }
    (staged,) = example.instances("google_project_iam_member", "build_reads_staged_sources").values()
    assert "gcf-v2-sources-" in str(staged["condition"][0]["expression"])


def test_each_function_publishes_only_where_its_stage_writes(example: Module) -> None:
    grants = _grants_by_function(example, "google_pubsub_topic_iam_member", "publisher", "topic")
    topics = {fn: {str(t).split('"')[1] for _, t in g} for fn, g in grants.items()}
    assert topics == {
        "fan_out": {"table-exports", "verify-results"},
        "export_table": {"verify-results"},
        # a transfer that runs out of its time budget asks to be continued
        "upload_box": {"deliveries", "verify-results", "delivery-continuations"},
        "transfer_sftp": {"deliveries", "verify-results", "delivery-continuations"},
        # the sweep hands the recheck's pairs it has no time for to other verify instances
        "verify": {"verify-results", "verify-requests"},
        # POST /sync, /verify/<id>, /ingest, /collect/<job> and /restore-drill/<dataset> publish what a
        # scheduler or `offsite run` would
        "http_trigger": {"export-requests", "verify-requests", "ingest-requests", "collect-requests", "restore-drills"},
        "ingest_sqlite": {"verify-results", "ingest-requests"},  # tables left to a new invocation
        "collect_list": {"collect-files", "verify-results"},
        "collect_copy": {"verify-results", "collect-files"},  # collect-files: continuations
        # the restore drill continues a sample one table per invocation
        "restore_drill": {"restore-drills", "verify-results"},
    }
    assert all(role == "roles/pubsub.publisher" for g in grants.values() for role, _ in g)


def _scope(expression: str, bucket: str) -> str:
    """A grant's IAM condition, short: "exports/" (objects under it), "exports/*/x.json" (... named
    */x.json), "list:alerts/" (listings of a prefix under alerts/)."""
    listing = re.fullmatch(
        r'api\.getAttribute\("storage\.googleapis\.com/objectListPrefix", ""\)\.startsWith\("([^"]*)"\)', expression
    )
    if listing:
        return f"list:{listing.group(1)}"
    match = re.fullmatch(
        rf'resource\.name\.startsWith\("projects/_/buckets/{bucket}/objects/([^"]*)"\)'
        r'(?: && resource\.name\.endsWith\("([^"]+)"\))?',
        expression,
    )
    assert match, expression
    return match.group(1) + (f"*{match.group(2)}" if match.group(2) else "")


def _bucket_grants(example: Module, resource: str, bucket: str, bucket_ref: str) -> dict[str, set]:
    grants: dict[str, set] = defaultdict(set)
    for attrs in example.instances("google_storage_bucket_iam_member", resource).values():
        assert str(attrs["bucket"]) == bucket_ref
        scope = ""
        if attrs.get("condition"):
            (condition,) = attrs["condition"]
            scope = _scope(condition["expression"], bucket)
        grants[_function_of(attrs["member"])].add((str(attrs["role"]), scope))
    return grants


def test_bucket_access_per_function_and_prefix(example: Module) -> None:
    metadata_writer = "google_project_iam_custom_role.object_metadata_writer.id"
    replacer = "google_project_iam_custom_role.object_replacer.id"
    lister = "google_project_iam_custom_role.object_lister.id"
    creator = "roles/storage.objectCreator"
    exports = _bucket_grants(example, "exports", "bqx-ml-offsite-exports", 'google_storage_bucket.data["exports"].name')
    assert exports == {
        # export_table may overwrite its own export objects (a retried BigQuery extract rewrites them).
        "export_table": {(replacer, "exports/"), ("roles/storage.objectViewer", "")},
        # ... and each run's delivered manifest, created once (shared/delivery/manifest_copy.py)
        "upload_box": {
            ("roles/storage.objectViewer", ""),
            (metadata_writer, "exports/"),
            (creator, "exports/*/_manifest.delivered.json"),
        },
        "transfer_sftp": {
            ("roles/storage.objectViewer", ""),
            (metadata_writer, "exports/"),
            (creator, "exports/*/_manifest.delivered.json"),
        },
        # verify rewrites an object to re-deliver it (self-heal)
        "verify": {("roles/storage.objectViewer", ""), (replacer, "exports/")},
        # GET /runs/<id> lists the run's folders and reads their _run.json
        "http_trigger": {("roles/storage.objectViewer", "")},
    }
    # Everything offsite writes about itself lives in the state bucket, where no trigger listens.
    state = _bucket_grants(example, "state", "bqx-ml-offsite-exports-state", 'google_storage_bucket.data["state"].name')
    # the run history, alerts (listed to flush them) and the last error of a retried event
    reporting = {(creator, "results/"), (replacer, "alerts/"), (lister, "list:alerts/"), (replacer, "errors/")}
    assert state == {
        # each request's table exports, recorded once for lookups by run id (shared/run_index.py)
        "fan_out": {(creator, "run-index/")} | reporting,
        # a failed export job is claimed once per run before it is reported (released if unreported);
        # the finalize sweep saves where its next listing starts
        "export_table": {(replacer, "exports/*/_export/failure.json"), (replacer, "sweep/*/finalize-cursor.json")}
        | reporting,
        # a transfer that runs out of its time budget keeps its checkpoint here; a failure is
        # reported once per run and destination (shared/stages/failures.py)
        "upload_box": {(replacer, "checkpoints/"), (replacer, "exports/*/failed-upload_box.json")} | reporting,
        "transfer_sftp": {(replacer, "checkpoints/"), (replacer, "exports/*/failed-transfer_sftp.json")} | reporting,
        # verify's markers use the run folder names; its other claims and records have their own prefixes
        "verify": {
            (replacer, "exports/"),
            ("roles/storage.objectViewer", ""),
            *((replacer, prefix) for prefix in ("dead-letters/", "retention/", "recheck/", "mirror/")),
            (replacer, "sweep/*/verify-cursor.json"),  # where the next sweep's listing starts
        }
        | reporting,
        # ?wait= and GET /runs/<id> read the run history; the trigger reports nothing itself
        "http_trigger": {("roles/storage.objectViewer", "")},
        "ingest_sqlite": reporting,
        # collect's listings, plans, claims, copy records and done ledger (listed, so a viewer)
        "collect_list": {(replacer, "collect/"), ("roles/storage.objectViewer", "")} | reporting,
        # ... and, as the uploaders, the checkpoints of copies longer than one invocation
        "collect_copy": {(replacer, "collect/"), ("roles/storage.objectViewer", ""), (replacer, "checkpoints/")}
        | reporting,
        # the restore drill stages files (BigQuery loads them) and keeps its record under restore-drill/
        "restore_drill": {(replacer, "restore-drill/"), ("roles/storage.objectViewer", "")} | reporting,
    }


def test_each_function_reads_only_its_own_credentials(example: Module) -> None:
    grants = _grants_by_function(example, "google_secret_manager_secret_iam_member", "credential_reader", "secret_id")
    secrets = {fn: {s.split('"')[1] for _, s in g} for fn, g in grants.items()}
    slack = "slack-webhook"  # any stage may alert when it reports a failure
    assert secrets == {
        "fan_out": {slack},
        "export_table": {slack},
        "upload_box": {"offsite-box-jwt-config", slack},
        "transfer_sftp": {"sftp-acme-key", "sftp-acme-known-hosts", slack},
        "verify": {"offsite-box-jwt-config", "sftp-acme-key", "sftp-acme-known-hosts", slack},
        "ingest_sqlite": {"ingest-hash-key", slack},  # ingest.hash_key (hashed columns)
        # a collect partner may also be named from destinations.sftp; the copy writes to any destination
        "collect_list": {"sftp-toast-key", "sftp-toast-known-hosts", "sftp-acme-key", "sftp-acme-known-hosts", slack},
        "collect_copy": {
            "sftp-toast-key",
            "sftp-toast-known-hosts",
            "offsite-box-jwt-config",
            "sftp-acme-key",
            "sftp-acme-known-hosts",
            slack,
        },
        # the restore drill reads copies back from any destination
        "restore_drill": {"offsite-box-jwt-config", "sftp-acme-key", "sftp-acme-known-hosts", slack},
    }
    config_readers = _grants_by_function(
        example, "google_secret_manager_secret_iam_member", "config_reader", "secret_id"
    )
    assert set(config_readers) == {fn.name for fn in topology.FUNCTIONS}
    assert all(
        role == "roles/secretmanager.secretAccessor"
        for g in [*grants.values(), *config_readers.values()]
        for role, _ in g
    )


def test_destination_credentials_go_to_the_functions_that_use_those_destinations(example: Module) -> None:
    """topology's ``uses`` (serves + reaches) is what Box pacing divides Box's limit by: a function
    given Box's credentials but missing there would call Box beyond its share."""
    groups = example.local("secret_groups")
    for fn in topology.FUNCTIONS:
        assert set(groups[fn.name]) & topology.DESTINATION_KINDS == set(fn.uses), fn.name


def test_bigquery_access_is_per_dataset(example: Module) -> None:
    readers = example.instances("google_bigquery_dataset_iam_member", "reader")
    by_fn: dict[str, set] = defaultdict(set)
    for attrs in readers.values():
        by_fn[_function_of(attrs["member"])].add((attrs["role"], attrs["project"], attrs["dataset_id"]))
    datasets = {"bqx_ml_v3_models", "bqx_ml_v3_features", "bqx_ml_v3_predictions", "bqx_ml_v3_analytics_v2"}
    assert by_fn == {
        "fan_out": {("roles/bigquery.metadataViewer", "bqx-ml", d) for d in datasets},
        # it validates POST /sync as fan_out does: the tables must exist
        "http_trigger": {("roles/bigquery.metadataViewer", "bqx-ml", d) for d in datasets},
        # plus `bqx-ml.shop`, which the product_data query export's SQL reads
        "export_table": {("roles/bigquery.dataViewer", "bqx-ml", d) for d in datasets | {"shop"}},
    }
    # the ingest's own dataset (infra/ingest.tf): the ingest function writes it; the HTTP trigger
    # reads it (GET /ingest: the sync state, as a plain table read, so no bigquery.jobUser)
    ingest = {}
    for name in ("ingest_editor", "ingest_state_reader"):
        (grant,) = example.instances("google_bigquery_dataset_iam_member", name).values()
        ingest[_function_of(grant["member"])] = (str(grant["role"]), str(grant["dataset_id"]))
    assert ingest == {
        "ingest_sqlite": (
            "google_project_iam_custom_role.ingest_writer[0].id",
            "google_bigquery_dataset.ingest[0].dataset_id",
        ),
        "http_trigger": ("roles/bigquery.dataViewer", "google_bigquery_dataset.ingest[0].dataset_id"),
    }


def test_datasets_a_query_export_reads_are_derived_from_its_sql(infra) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["exports"] = [
        {
            "name": "orders",
            "sql": (
                "SELECT o.*, EXTRACT(DATE FROM o.created_at) AS day FROM `sales.orders` AS o\n"
                "JOIN `other-proj.crm.customers` c USING (customer_id)\n"
                "left join warehouse_proj.stock.items i ON i.id = o.item_id\n"
                "WHERE o.created_at >= {date} AND o.id IN (SELECT id FROM `sales.flags`)"
            ),
        },
        {  # a wildcard table, and a comma join (neither was read: the export failed with accessDenied)
            "name": "events",
            "sql": "SELECT * FROM `bqx-ml.ga4.events_*` e, `bqx-ml.geo.cities` c WHERE e.day = {date}",
        },
    ]
    module = infra(yaml.safe_dump(config), query_export_datasets=["bqx-ml.sales", "extra"])
    assert module.local("query_datasets") == {
        "bqx-ml.sales": {"project": "bqx-ml", "dataset": "sales"},
        "other-proj.crm": {"project": "other-proj", "dataset": "crm"},
        "warehouse_proj.stock": {"project": "warehouse_proj", "dataset": "stock"},
        "bqx-ml.ga4": {"project": "bqx-ml", "dataset": "ga4"},
        "bqx-ml.geo": {"project": "bqx-ml", "dataset": "geo"},
        "bqx-ml.extra": {"project": "bqx-ml", "dataset": "extra"},
    }
    readers = module.instances("google_bigquery_dataset_iam_member", "reader")
    assert {k for k in readers if k.startswith("export_table/") and not k.endswith(tuple(SEED_DATASETS))} == {
        "export_table/bqx-ml.sales",
        "export_table/other-proj.crm",
        "export_table/warehouse_proj.stock",
        "export_table/bqx-ml.ga4",
        "export_table/bqx-ml.geo",
        "export_table/bqx-ml.extra",
    }
    assert readers["export_table/other-proj.crm"]["project"] == "other-proj"
    assert not any(k.startswith("fan_out/") and k.endswith(("sales", "crm", "stock")) for k in readers)


def test_query_export_datasets_are_readable_by_the_exporter_only(infra) -> None:  # type: ignore[no-untyped-def]
    module = infra(query_export_datasets=["bqx-ml.shop", "staging"])
    readers = module.instances("google_bigquery_dataset_iam_member", "reader")
    assert readers["export_table/bqx-ml.shop"]["dataset_id"] == "shop"
    assert readers["export_table/bqx-ml.staging"]["project"] == "bqx-ml"
    assert not any(key.startswith("fan_out/") and key.endswith((".shop", ".staging")) for key in readers)


def test_triggers_invoke_every_event_function_and_nothing_else(example: Module) -> None:
    invokers = example.instances("google_cloud_run_v2_service_iam_member", "trigger_invoker")
    assert set(invokers) == {fn.name for fn in topology.FUNCTIONS if not fn.http}
    for fn, attrs in invokers.items():
        assert attrs["role"] == "roles/run.invoker"
        assert str(attrs["member"]) == "serviceAccount:${google_service_account.trigger.email}"
        assert str(attrs["name"]) == f'google_cloudfunctions2_function.fn["{fn}"].service_config[0].service'


def test_pubsub_service_agent_can_dead_letter_and_sign_push_tokens(example: Module) -> None:
    agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    publishers = example.instances("google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert {str(a["topic"]).split('"')[1] for a in publishers.values()} == {
        s.dead_letter_topic for s in topology.subscriptions()
    } | {topology.REPORTS_DEAD_LETTER_TOPIC}
    subscribers = example.instances("google_pubsub_subscription_iam_member", "dead_letter_subscriber")
    assert set(subscribers) == {s.name for s in topology.subscriptions() if s.trigger.kind == "pubsub"}
    report_subscribers = example.instances("google_pubsub_subscription_iam_member", "report_dead_letter_subscriber")
    assert set(report_subscribers) == {r.name for r in topology.dead_letter_reports()}
    for attrs in [*publishers.values(), *subscribers.values(), *report_subscribers.values()]:
        assert str(attrs["member"]) == agent
    (signer,) = example.instances("google_service_account_iam_member", "pubsub_signs_trigger_tokens").values()
    assert (signer["role"], str(signer["member"])) == ("roles/iam.serviceAccountTokenCreator", agent)
    assert str(signer["service_account_id"]) == "google_service_account.trigger.name"


def test_one_service_account_per_function(example: Module) -> None:
    accounts = example.instances("google_service_account", "function")
    assert set(accounts) == {fn.name for fn in topology.FUNCTIONS}
    assert len({a["account_id"] for a in accounts.values()}) == len(accounts)
    for attrs in accounts.values():
        assert 6 <= len(attrs["account_id"]) <= 30


def test_granted_prefixes_are_where_shared_writes() -> None:
    """The conditional grants name the prefixes the code writes under; a renamed prefix fails here."""
    from shared.config import Config
    from shared.reporting.alerts import ALERTS_PREFIX
    from shared.reporting.history import RESULTS_PREFIX
    from shared.run_index import INDEX_PREFIX

    iam_tf = (INFRA / "iam.tf").read_text()
    assert f'prefix = "{RESULTS_PREFIX}"' in iam_tf
    assert f'prefix = "{ALERTS_PREFIX}"' in iam_tf
    assert f'prefix = "{INDEX_PREFIX}"' in iam_tf
    assert (
        Config.model_fields["export_prefix"].default == "exports"
    )  # the default the export_prefix local falls back to
    assert 'try(local.config.export_prefix, null), "exports")' in iam_tf


def test_without_an_ingest_section_the_trigger_reads_no_ingest_dataset(infra) -> None:  # type: ignore[no-untyped-def]
    bare = infra("project: p\nbucket: b\n")
    assert bare.instances("google_bigquery_dataset_iam_member", "ingest_state_reader") == {}
