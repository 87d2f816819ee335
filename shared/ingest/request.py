"""The ``ingest-requests`` contract: ``{"tables": [...], "full": true}``, as strict as export-requests.

Unknown fields, a table name that is not an identifier, an empty list or a ``full`` that is
not a JSON boolean are rejected with the field, the value and what was expected (the same
:class:`~shared.messages.Message` parsing and wording as every other message).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import StrictBool

from shared.message_fields import Idents, RunId
from shared.messages import Message


class IngestRequest(Message):
    KIND: ClassVar[str] = "ingest request"
    tables: Idents | None = None  # None: every table the config selects
    full: StrictBool = False
    run_id: RunId | None = None
