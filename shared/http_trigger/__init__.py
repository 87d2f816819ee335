"""The HTTP trigger (functions/http_trigger): seed 000's ``POST /sync`` API over the pipeline.

``auth`` checks the caller's Google OIDC ID token; ``api`` routes a request to what it asks
(publish an export request, read a run's results, publish a verify request); ``ingest`` starts
the SQLite → BigQuery ingest and reads its sync state; ``progress`` reads a run's results from
the run history, as ``offsite status`` does.
"""
