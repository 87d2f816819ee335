"""The local Box API's per-user rate limits (devstack/boxapi/ratelimit.py), off unless configured."""

from __future__ import annotations

import requests

from devstack.boxapi import BoxApiServer


def _me(box: BoxApiServer) -> requests.Response:
    return requests.get(f"{box.base_url}/2.0/users/me", headers={"Authorization": f"Bearer {box.token}"}, timeout=10)


def _upload(box: BoxApiServer, name: str) -> requests.Response:
    files = {"attributes": (None, '{"name": "%s", "parent": {"id": "0"}}' % name), "file": (name, b"x" * 10)}
    return requests.post(
        f"{box.upload_url}/2.0/files/content", headers={"Authorization": f"Bearer {box.token}"}, files=files, timeout=10
    )


def test_calls_past_the_per_minute_limit_get_429_with_retry_after(box: BoxApiServer) -> None:
    box.reset(data=False)  # the worker's server saw other tests' calls within the last minute
    box.configure(calls_per_minute=3)
    assert [_me(box).status_code for _ in range(3)] == [200, 200, 200]
    refused = _me(box)
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert box.request_counts()["get_user_me"] == 4


def test_uploads_have_their_own_smaller_limit(box: BoxApiServer) -> None:
    box.reset(data=False)
    box.configure(calls_per_minute=100, uploads_per_minute=2)
    names = [f"rl-{i}.bin" for i in range(3)]
    assert [_upload(box, n).status_code for n in names] == [201, 201, 429]
    assert _me(box).status_code == 200  # other calls still pass


def test_no_limits_by_default(box: BoxApiServer) -> None:
    box.reset(data=False)
    assert box.configure()["calls_per_minute"] is None
    assert all(_me(box).status_code == 200 for _ in range(30))


def test_refusals_are_counted_for_the_admin_request_log(box: BoxApiServer) -> None:
    box.reset(data=False)
    box.configure(calls_per_minute=1)
    assert [_me(box).status_code for _ in range(3)] == [200, 429, 429]
    assert box.requests()["rate_limited"] == 2
    box.reset(data=False)
    assert box.requests()["rate_limited"] == 0
