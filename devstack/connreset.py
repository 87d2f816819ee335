"""Dropping a connection on purpose, for the local API servers' ``drop`` faults (boxapi, driveapi)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


async def reset_connection(receive: Callable, send: Callable) -> bool:
    """Reset the request's TCP connection without an answer; False when the server is not
    uvicorn (whose ``send`` is a bound method of its request cycle, whose transport we abort)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.abort()
    # Let the server see the connection go before the app returns (else it logs an error).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while (await receive())["type"] != "http.disconnect":
                pass
    return True
