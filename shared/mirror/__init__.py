"""GCS bucket mirrors (``buckets[]`` in the config; docs/mirror.md).

A mirrored bucket's objects are delivered by the one delivery operation
(:mod:`shared.delivery.operation`) to ``{remote_folder}/{object name}`` at each destination:
:mod:`routing` (which objects, where they go), :mod:`deletes` (an object deleted in the bucket),
:mod:`compare` (bucket against destination: missing, extra, size, hash), :mod:`reconcile`
(the scheduled comparison that fixes the difference and reports a VerifyResult),
:mod:`request` (the ``mirror-reconciles`` message), :mod:`versions` (with ``retention``: removed
copies kept in dated ``_offsite_versions/`` folders).
"""
