"""The mirror's message and result shapes: MirrorRequest, a bucket Source (results only)."""

from __future__ import annotations

import pytest

from shared.errors import RejectedInput
from shared.messages import Source, TableExport, VerifyResult
from shared.mirror.request import MirrorRequest
from shared.mirror.routing import mirror_run_id


def test_mirror_request_parses_and_names_bad_fields() -> None:
    assert MirrorRequest.from_json(b'{"bucket": "b-data"}') == MirrorRequest(bucket="b-data")
    with pytest.raises(RejectedInput, match=r"mirror request.destination: 'ftp:x' is not a destination name"):
        MirrorRequest.from_json(b'{"bucket": "b-data", "destination": "ftp:x"}')
    with pytest.raises(RejectedInput, match=r"mirror request.bucket"):
        MirrorRequest.from_json(b'{"fix": false}')
    # parsed strictly, as every message's flag: a string or a number is refused, not guessed at
    for wrong in (b'"no"', b'"yes"', b"0", b"1"):
        with pytest.raises(RejectedInput, match=r"mirror request.fix: expected true or false, got "):
            MirrorRequest.from_json(b'{"bucket": "b-data", "fix": ' + wrong + b"}")


def test_a_request_id_is_shaped_like_a_run_id_and_kept_when_handed_on_per_destination() -> None:
    from shared.ids import DestinationId
    from shared.mirror.reconcile import per_destination

    asked = MirrorRequest.from_json(b'{"bucket": "b-data", "request_id": "nightly-load_42"}')
    split = per_destination(asked, (DestinationId.parse("box"), DestinationId.parse("sftp:a")))
    assert [(str(r.destination), r.request_id) for r in split] == [
        ("box", "nightly-load_42"),
        ("sftp:a", "nightly-load_42"),
    ]
    for wrong in (b'"a b"', b'""', b'"' + b"x" * 64 + b'"', b"42"):
        with pytest.raises(RejectedInput, match=r"mirror request.request_id: "):
            MirrorRequest.from_json(b'{"bucket": "b-data", "request_id": ' + wrong + b"}")
    result = VerifyResult(status="in_sync", request_id="nightly-load_42")
    assert VerifyResult.from_json(result.to_json()).request_id == "nightly-load_42"


def test_a_bucket_source_names_results_but_is_never_exported() -> None:
    source = Source(mode="bucket", bucket="bqx-ml-models")
    assert source.label == "gs://bqx-ml-models"
    result = VerifyResult(status="in_sync", run_id=mirror_run_id("bqx-ml-models"), source=source)
    assert VerifyResult.from_json(result.to_json()).source == source
    with pytest.raises(RejectedInput, match=r"table export.source.mode: 'bucket' is not 'table' or 'query'"):
        TableExport.from_obj(
            {"run_id": "r1", "date": "2025-01-08", "source": source.to_dict(), "format": "CSV", "prefix": "p/"}
        )


def test_mirror_run_ids_are_valid_run_ids() -> None:
    assert mirror_run_id("bqx.ml.models") == "mirror-bqx-ml-models"
    assert len(mirror_run_id("a" * 63)) == 63
