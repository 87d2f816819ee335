"""Each function's Cloud Storage calls, run as that function under the bucket IAM infra/ grants.

No real IAM runs locally, so the storage client here is a small in-memory GCS that answers 403
exactly where Cloud Storage would under the grants of the evaluated ``*_iam_member`` resources
(infra/iam.tf, infra/mirror.tf): a role's permissions, and its IAM condition evaluated on the
request. An object request's ``resource.name`` is ``projects/_/buckets/B/objects/NAME``; a
listing's is the bucket's (so an object-name prefix never allows a listing), and only a listing
carries the ``storage.googleapis.com/objectListPrefix`` API attribute. Replacing an object
needs ``delete`` as well as ``create``. The code under test is the real shared/ code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from shared import runtime, topology
from shared.errors import PermanentError, TransientError
from shared.gcp import clients, gcs
from shared.ids import Stage
from tests.infra.conftest import EXAMPLE_CONFIG, INFRA
from tests.infra.hcl_eval import Module
from tests.infra.test_iam import _function_of

REPORTING = sorted(fn.name for fn in topology.FUNCTIONS if not fn.http)
DELIVERY = ["upload_box", "transfer_sftp"]
PREDEFINED = {
    "roles/storage.objectViewer": {"get", "list"},
    "roles/storage.objectCreator": {"create"},
}
_CLAUSE = re.compile(
    r'(?:resource\.name\.(?P<op>startsWith|endsWith)|api\.getAttribute\("(?P<attr>[^"]+)", ""\)\.startsWith)'
    r'\("(?P<value>[^"]*)"\)'
)


@dataclass(frozen=True)
class Grant:
    permissions: frozenset[str]
    condition: str | None  # CEL, as infra/ writes it

    def allows(self, permission: str, resource_name: str, list_prefix: str | None) -> bool:
        if permission not in self.permissions:
            return False
        if self.condition is None:
            return True
        return all(_clause_holds(c, resource_name, list_prefix) for c in self.condition.split(" && "))


def _clause_holds(clause: str, resource_name: str, list_prefix: str | None) -> bool:
    match = _CLAUSE.fullmatch(clause.strip())
    assert match, f"an IAM condition clause this test cannot evaluate: {clause!r}"
    value = match["value"]
    if match["attr"]:
        assert match["attr"] == "storage.googleapis.com/objectListPrefix", match["attr"]
        return (list_prefix or "").startswith(value)
    return resource_name.startswith(value) if match["op"] == "startsWith" else resource_name.endswith(value)


def _grants(module: Module) -> dict[tuple[str, str], list[Grant]]:
    """(bucket, function) → the grants infra/ makes there."""
    custom = {
        f"google_project_iam_custom_role.{name}.id": frozenset(s.split(".")[-1] for s in attrs["permissions"])
        for rtype, name in module.resources
        if rtype == "google_project_iam_custom_role"
        for attrs in module.instances(rtype, name).values()
    }
    buckets = {"exports": module.local("bucket"), "state": module.local("state_bucket")}
    found: dict[tuple[str, str], list[Grant]] = {}
    for rtype, name in module.resources:
        if rtype != "google_storage_bucket_iam_member":
            continue
        for attrs in module.instances(rtype, name).values():
            fn = _function_of(attrs["member"])
            if fn is None:
                continue  # the build account
            bucket = attrs["bucket"] if isinstance(attrs["bucket"], str) else buckets[name]
            role = str(attrs["role"])
            permissions = frozenset(PREDEFINED[role]) if role in PREDEFINED else custom[role]
            conditions = attrs.get("condition") or []
            condition = str(conditions[0]["expression"]) if conditions else None
            found.setdefault((bucket, fn), []).append(Grant(permissions, condition))
    return found


@dataclass
class Stored:
    data: bytes
    generation: int
    content_type: str | None
    metadata: dict[str, str] = field(default_factory=dict)


class FakeGcs:
    """The slice of google.cloud.storage.Client that shared.gcp uses, enforcing the grants."""

    def __init__(self, grants: dict[tuple[str, str], list[Grant]]) -> None:
        self.grants = grants
        self.objects: dict[tuple[str, str], Stored] = {}
        self.acting_as = ""

    def check(self, permission: str, bucket: str, name: str | None = None, list_prefix: str | None = None) -> None:
        resource = f"projects/_/buckets/{bucket}" + (f"/objects/{name}" if name is not None else "")
        if not any(g.allows(permission, resource, list_prefix) for g in self.grants.get((bucket, self.acting_as), [])):
            what = f"gs://{bucket}/{name if name is not None else list_prefix}"
            raise gexc.Forbidden(f"offsite-{self.acting_as} lacks storage.objects.{permission} on {what}")

    def put(self, bucket: str, name: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Seed an object (as whoever wrote it before the test)."""
        self.objects[(bucket, name)] = Stored(data, 1, "application/json", dict(metadata or {}))

    def bucket(self, name: str) -> FakeBucket:
        return FakeBucket(self, name)

    def list_blobs(
        self, bucket: str, prefix: str = "", page_size: Any = None, start_offset: Any = None, **_: Any
    ) -> Iterator[Any]:
        self.check("list", bucket, list_prefix=prefix)
        for b, name in sorted(self.objects):
            if b == bucket and name.startswith(prefix) and name >= (start_offset or ""):
                blob = FakeBlob(self, FakeBucket(self, b), name)
                blob.load()
                yield blob


@dataclass
class FakeBucket:
    gcs: FakeGcs
    name: str

    def blob(self, name: str, generation: int | None = None) -> FakeBlob:
        return FakeBlob(self.gcs, self, name)


class FakeBlob:
    def __init__(self, store: FakeGcs, bucket: FakeBucket, name: str) -> None:
        self.store, self.bucket, self.name = store, bucket, name
        self.metadata: dict[str, Any] | None = None
        self.generation: int | None = None
        self.size: int | None = None
        self.md5_hash: str | None = None
        self.content_type: str | None = None
        self.crc32c: str | None = None
        self.time_created: dt.datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.bucket.name, self.name)

    def load(self) -> None:
        found = self.store.objects.get(self.key)
        if found is None:
            raise gexc.NotFound(f"gs://{self.bucket.name}/{self.name}")
        self.generation, self.size, self.content_type = found.generation, len(found.data), found.content_type
        self.md5_hash = hashlib.md5(found.data).hexdigest()
        self.metadata = dict(found.metadata)

    def reload(self, **_: Any) -> None:
        self.store.check("get", *self.key)
        self.load()

    def download_as_bytes(self, **_: Any) -> bytes:
        self.reload()
        return self.store.objects[self.key].data

    def upload_from_string(
        self, data: bytes | str, content_type: str | None = None, if_generation_match: int | None = None, **_: Any
    ) -> None:
        self.store.check("create", *self.key)
        current = self.store.objects.get(self.key)
        if if_generation_match is not None and (current.generation if current else 0) != if_generation_match:
            raise gexc.PreconditionFailed(f"gs://{self.bucket.name}/{self.name}: generation mismatch")
        if current is not None:
            self.store.check("delete", *self.key)  # replacing an object deletes the old one
        body = data.encode() if isinstance(data, str) else data
        generation = current.generation + 1 if current else 1
        self.store.objects[self.key] = Stored(body, generation, content_type, dict(self.metadata or {}))
        self.load()

    def _existing(self, permission: str, if_generation_match: int | None) -> Stored:
        """The stored object, once ``permission`` is granted and the precondition holds."""
        self.store.check(permission, *self.key)
        current = self.store.objects.get(self.key)
        if current is None:
            raise gexc.NotFound(f"gs://{self.bucket.name}/{self.name}")
        if if_generation_match is not None and current.generation != if_generation_match:
            raise gexc.PreconditionFailed("generation mismatch")
        return current

    def patch(self, if_generation_match: int | None = None, **_: Any) -> None:
        current = self._existing("update", if_generation_match)
        for k, v in (self.metadata or {}).items():
            if v is None:
                current.metadata.pop(k, None)
            else:
                current.metadata[k] = v
        self.load()

    def delete(self, if_generation_match: int | None = None, **_: Any) -> None:
        self._existing("delete", if_generation_match)
        del self.store.objects[self.key]


@pytest.fixture(scope="module")
def granted(archives_dir: Path) -> dict[tuple[str, str], list[Grant]]:
    return _grants(Module(INFRA, {"source_archives_dir": str(archives_dir), "config_file": str(EXAMPLE_CONFIG)}))


@pytest.fixture
def store(granted: dict[tuple[str, str], list[Grant]], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcs]:
    fake = FakeGcs(granted)
    monkeypatch.setattr(clients, "storage_client", lambda: fake)
    monkeypatch.setenv("OFFSITE_CONFIG", str(EXAMPLE_CONFIG))
    runtime.reset()
    yield fake
    runtime.reset()


def _run_folder() -> Any:
    from shared.layout import RunFolder
    from shared.messages import Source

    source = Source(mode="table", project="bqx-ml", dataset="ds", table="t")
    return RunFolder(runtime.config().export_prefix.strip("/"), source, dt.date(2026, 12, 4), "r1")


def test_the_fake_denies_what_is_not_granted(store: FakeGcs) -> None:
    config = runtime.config()
    store.acting_as = "fan_out"
    with pytest.raises(PermanentError, match="access denied"):
        gcs.list_prefix(config.state_bucket_name, "")
    with pytest.raises(PermanentError, match="access denied"):
        gcs.write(config.bucket, "exports/x.json", b"{}")


# ---- finding 1: the delivery functions seal the run's delivered manifest --------------------------


@pytest.mark.parametrize("fn", DELIVERY)
def test_delivery_function_seals_the_delivered_manifest(store: FakeGcs, fn: str) -> None:
    from shared.delivery import manifest_copy
    from shared.delivery.ledger import SHA1_KEY

    bucket, folder = runtime.config().bucket, _run_folder()
    data = folder.prefix + "t_000000000000.parquet"
    store.put(bucket, data, b"PAR1", {SHA1_KEY: "a" * 40})
    raw = json.dumps({"files": [{"name": "t_000000000000.parquet", "object": data, "size": 4}]}).encode()
    store.put(bucket, folder.manifest_name, raw)
    store.acting_as = fn

    sealed = manifest_copy.seal(bucket, folder, raw)

    assert sealed.name == folder.delivered_manifest_name
    assert json.loads(store.objects[(bucket, sealed.name)].data)["files"][0]["sha1"] == "a" * 40
    with pytest.raises(PermanentError, match="access denied"):  # that one name, nothing else of the run
        gcs.write(bucket, folder.prefix + "other.json", b"{}")


# ---- finding 2: verify's records in the state bucket, and its ledger entries on mirrored buckets ----


def _dead_letter_claim(bucket: str) -> None:
    from shared.stages.dead_letters import CLAIMS
    from shared.verify import markers

    assert markers.claim(bucket, f"{CLAIMS}0123abcd.json", {"message_id": "m1"})


def _retention_claim(bucket: str) -> None:
    from shared.budgeted_pass import record_outcome
    from shared.retention import scheduled
    from shared.verify import markers

    config = runtime.config()
    name = scheduled.claim_name((config.datasets[0], "box"), dt.datetime(2026, 12, 4, tzinfo=dt.UTC))  # type: ignore[arg-type]
    assert markers.claim(bucket, name, {"status": "pruning"})
    record_outcome(bucket, name, {"status": "done"}, "retention")
    assert json.loads(gcs.read_bytes(bucket, name) or b"{}") == {"status": "done"}
    markers.release(bucket, name)
    assert gcs.stat(bucket, name) is None


def _recheck_cursor(bucket: str) -> None:
    from shared.verify import marker_scan

    now, cursor = dt.datetime.now(dt.UTC), marker_scan.cursor(bucket, "exports")
    cursor.save("exports/a/", now)
    cursor.save("exports/b/", now)  # replaced on every recheck
    assert cursor.read() == "exports/b/"


def _sweep_cursor(bucket: str) -> None:
    from shared.verify import sweep

    now, cursor = dt.datetime.now(dt.UTC), sweep.cursor(bucket, "exports")
    cursor.save("exports/a/", now)
    cursor.save("exports/b/", now)  # replaced by every sweep whose listing stops early
    assert cursor.read() == "exports/b/"


def _mirror_reconcile_record(bucket: str) -> None:
    from shared.mirror import latest

    mirror = runtime.config().buckets[0]
    for status in ("mismatch", "in_sync"):  # replaced by every reconcile
        gcs.write(bucket, latest.name(mirror, "box"), json.dumps({"status": status}).encode())
    assert latest.in_sync(runtime.config(), mirror, "box")


@pytest.mark.parametrize(
    "record",
    [_dead_letter_claim, _retention_claim, _recheck_cursor, _sweep_cursor, _mirror_reconcile_record],
    ids=lambda f: f.__name__,
)
def test_verify_keeps_its_records_in_the_state_bucket(store: FakeGcs, record: Any) -> None:
    store.acting_as = "verify"
    record(runtime.config().state_bucket_name)


def test_verify_forgets_a_ledger_entry_on_a_mirrored_bucket(store: FakeGcs) -> None:
    from shared.delivery import ledger
    from shared.ids import DestinationId

    bucket, destination = runtime.config().buckets[0].name, DestinationId.parse("box")
    store.put(bucket, "models/a.bin", b"x", {ledger.ledger_key(destination): "entry"})
    store.acting_as = "verify"
    info = gcs.stat(bucket, "models/a.bin", missing_ok=False)
    assert info is not None

    ledger.forget(info, destination)

    assert ledger.ledger_key(destination) not in store.objects[(bucket, "models/a.bin")].metadata


def test_a_ledger_entry_that_cannot_be_dropped_is_raised_not_taken_for_a_replaced_object(store: FakeGcs) -> None:
    """A 403 used to be logged as "object replaced; its ledger entry went with it", and the entry
    kept vouching for a damaged copy at every re-delivery."""
    from shared.delivery import ledger
    from shared.ids import DestinationId

    bucket, destination = runtime.config().buckets[0].name, DestinationId.parse("box")
    store.put(bucket, "models/a.bin", b"x", {ledger.ledger_key(destination): "entry"})
    store.acting_as = "verify"
    info = gcs.stat(bucket, "models/a.bin", missing_ok=False)
    assert info is not None
    store.acting_as = "http_trigger"  # no grant on mirrored buckets
    with pytest.raises(PermanentError, match="access denied"):
        ledger.forget(info, destination)
    assert store.objects[(bucket, "models/a.bin")].metadata[ledger.ledger_key(destination)] == "entry"


# ---- finding 3: the runner's last errors; the delivery functions' once-per-run failure marker -----


@pytest.mark.parametrize("fn", REPORTING)
def test_every_reporting_function_records_the_last_error_of_a_retried_event(store: FakeGcs, fn: str) -> None:
    from shared.reporting import last_errors

    bucket = runtime.config().state_bucket_name
    store.acting_as = fn
    for attempt in (1, 2):  # one record per event, replaced on each retry (record() only logs a failure)
        last_errors.record(bucket, "k1", fn, TransientError(f"attempt {attempt}"))
    assert json.loads(store.objects[(bucket, "errors/k1.json")].data)["error"] == "TransientError: attempt 2"


@pytest.mark.parametrize("fn", DELIVERY)
def test_delivery_function_claims_counts_and_releases_its_failure_marker(store: FakeGcs, fn: str) -> None:
    from shared.messages import VerifyResult
    from shared.stages import failures
    from shared.verify import markers

    folder = _run_folder()
    result = VerifyResult(
        status="failed", stage=fn, reason="box: 403", run_id="r1", destination="box", source=folder.source,
        date="2026-12-04",
    )  # fmt: skip
    marker = failures._failed_marker(result)
    assert marker is not None and marker[1].startswith(folder.prefix)
    store.acting_as = fn

    assert markers.claim(*marker, result.to_dict())  # the first failure is published
    gcs.update_json(*marker, lambda found: {**(found or {}), "failures": 2})  # later ones are counted
    assert json.loads(store.objects[marker].data)["failures"] == 2
    markers.release(*marker)  # its report could not be published: a later failure reports again
    assert marker not in store.objects


def test_export_table_keeps_where_its_next_finalize_sweep_lists_from(store: FakeGcs) -> None:
    from shared.stages.export import finalize_cursor
    from shared.verify import sweep

    config, now = runtime.config(), dt.datetime.now(dt.UTC)
    store.acting_as = "export_table"
    cursor = finalize_cursor(config.state_bucket_name, config.export_prefix)
    cursor.save("exports/a/", now)
    cursor.save("exports/b/", now)
    assert cursor.read() == "exports/b/"
    with pytest.raises(PermanentError, match="access denied"):  # verify's cursor is not export_table's
        sweep.cursor(config.state_bucket_name, config.export_prefix).save("exports/a/", now)


def test_export_table_claims_and_releases_the_failure_claim_of_a_run(store: FakeGcs) -> None:
    from shared.stages import export_records
    from shared.verify import markers

    config, folder = runtime.config(), _run_folder()
    name = folder.prefix + export_records.FAILURE_CLAIM
    store.acting_as = "export_table"

    assert export_records.claim_failure(config, folder, PermanentError("job failed"), None)
    markers.release(config.state_bucket_name, name)  # its report could not be published (failures.py)
    assert (config.state_bucket_name, name) not in store.objects


# ---- finding 4: every reporting function flushes its own alert outbox ------------------------------


@pytest.mark.parametrize("fn", REPORTING)
def test_every_reporting_function_flushes_its_alert_outbox(store: FakeGcs, fn: str) -> None:
    from shared.messages import VerifyResult
    from shared.reporting.alert_outbox import GcsOutbox

    outbox = GcsOutbox(runtime.config().state_bucket_name)
    result = VerifyResult(status="failed", stage=Stage(fn), reason="x", run_id="r1")
    store.acting_as = fn

    outbox.add("r1", "k1", result)
    pending = outbox.pending("r1")
    outbox.remove("r1", pending)

    assert [p.key for p in pending] == ["k1"]
    assert not outbox.pending("r1")
