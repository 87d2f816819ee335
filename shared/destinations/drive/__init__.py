"""Google Drive as a destination (``drive:NAME``): see docs/drive.md."""
