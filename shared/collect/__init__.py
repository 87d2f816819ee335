"""Collect: files taken from a partner's SFTP server into destinations (docs/collect.md).

``collect-requests`` → :mod:`shared.collect.listing` (list the partner directory, one
``collect-files`` message per new, stable file) → :mod:`shared.collect.copy` (stream the file
to every destination, verify each copy, then the post-action) → a result per run on
``verify-results`` and a freshness record (:mod:`shared.collect.runs`).
"""
