"""Sample objects for the local stack's mirrored bucket (``offsite dev seed``; docs/mirror.md).

Names with spaces, unicode and deep prefixes, as real buckets have them. Written through the
GCS emulator, so each one's finalize event reaches upload_box and transfer_sftp through the relay.
"""

from __future__ import annotations

from shared.config import Config
from shared.gcp import gcs

SAMPLE_OBJECTS: dict[str, bytes] = {
    "README.txt": b"Objects of this bucket are mirrored to Box and SFTP by offsite.\n",
    "models/v1/model weights.bin": bytes(range(256)) * 64,
    "reports/2025/Umsatz — Q1 ✓ (übersicht).csv": "region,umsatz\nNord,1200\nSüd,980\n".encode(),
}


def seed_mirrored_buckets(config: Config) -> dict[str, int]:
    """Write the sample objects into every mirrored bucket of ``config``; {bucket: objects written}."""
    written = {}
    for mirror in config.buckets:
        for name, data in SAMPLE_OBJECTS.items():
            gcs.write(mirror.name, name, data)
        written[mirror.name] = len(SAMPLE_OBJECTS)
    return written
