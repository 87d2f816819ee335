"""The demo's last step: one exported table restored from the local Box into bqemulator and
proven equal to its manifest (shared/restore), as ``offsite restore`` does."""

from __future__ import annotations

from devstack.state import StackInfo

STAGING_BUCKET = "offsite-restore-staging"
TABLE = "sales.products"


def restore_one(info: StackInfo, run_id: str, source: str = "box") -> tuple[bool, str]:
    """Restore ``TABLE`` of ``run_id`` from ``source`` into ``restored.products_<run_id>``;
    (proven equal, one summary line)."""
    from shared import runtime
    from shared.destinations import factory
    from shared.gcp import clients
    from shared.restore import restore as restoring

    storage = clients.storage_client()
    if storage.lookup_bucket(STAGING_BUCKET) is None:
        storage.create_bucket(STAGING_BUCKET)
    clients.bigquery_client().create_dataset(f"{info.project}.restored", exists_ok=True)
    target = f"{info.project}.restored.products_{run_id}"
    with factory.opened(source, runtime.config()) as destination:
        plan = restoring.plan(
            destination, run_id, target=target, staging_bucket=STAGING_BUCKET, table=TABLE, disposition="truncate"
        )
        result = restoring.execute(destination, plan)
    proof = result.proof
    assert proof is not None  # truncate: always proven
    checked = "row count, schema, fingerprint" if proof.fingerprint_checked else "row count, schema"
    state = "EQUAL" if proof.equal else "DIFFERENT: " + "; ".join(proof.problems)
    return (
        proof.equal,
        f"restore {TABLE} of run {run_id} from {source} → {target}: {state} ({checked}), {proof.rows} rows",
    )
