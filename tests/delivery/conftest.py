"""The delivery path's tests (shared/delivery, shared/stages/deliver.py) on the worker's bare
stack: the fixtures are tests/sftp/delivery_kit.py's, imported by each test module."""
