"""The BigQuery front's memory of finished bqemulator jobs (devstack/bqfront/finished.py)."""

from __future__ import annotations

import json

from devstack.bqfront.finished import FinishedJobs


def job(job_id: str, state: str) -> dict:
    return {"jobReference": {"projectId": "p", "jobId": job_id}, "status": {"state": state}}


def test_only_done_jobs_are_kept() -> None:
    finished = FinishedJobs()
    finished.remember_job(job("a", "RUNNING"))
    finished.remember_job(job("b", "DONE"))
    finished.remember_job({"status": {"state": "DONE"}})  # no reference: nothing to key it by
    assert finished.job("p", "a") is None
    assert finished.job("p", "b") == job("b", "DONE")
    assert finished.job("other", "b") is None


def test_only_complete_small_answers_are_kept_under_their_exact_query() -> None:
    finished = FinishedJobs(max_answer_bytes=200)
    complete = json.dumps({"jobComplete": True, "rows": [{"f": [{"v": "1"}]}]}).encode()
    finished.remember_answer("p", "q", "maxResults=0", complete)
    finished.remember_answer("p", "r", "", json.dumps({"jobComplete": False}).encode())
    finished.remember_answer("p", "s", "", json.dumps({"jobComplete": True, "pad": "x" * 300}).encode())
    finished.remember_answer("p", "t", "", b"not json")
    assert finished.answer("p", "q", "maxResults=0") == complete
    assert finished.answer("p", "q", "pageToken=0") is None  # another page or other options
    assert [finished.answer("p", j, "") for j in "rst"] == [None, None, None]


def test_the_least_recently_used_go_first() -> None:
    finished = FinishedJobs(max_entries=2)
    finished.remember_job(job("a", "DONE"))
    finished.remember_job(job("b", "DONE"))
    assert finished.job("p", "a") is not None  # used: b is now the oldest
    finished.remember_job(job("c", "DONE"))
    assert [finished.job("p", j) is not None for j in "abc"] == [True, False, True]
