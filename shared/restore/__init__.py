"""Restore: a delivered copy back into BigQuery, proven equal to what was exported.

``locate`` finds a run's manifest at a destination, ``stage`` streams its files into a staging
bucket checking each SHA-1 against the manifest, ``load`` runs one load job with the manifest's
schema and compares the restored table with the manifest; ``restore`` joins them.
"""
