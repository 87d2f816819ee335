"""A streaming ``multipart/form-data`` reader for Box's upload endpoints.

Box needs the ``attributes`` part before the ``file`` part so it can check the name and
folder before the bytes arrive; this reader hands out parts in order and streams each
part's data, so the file part goes to disk without being buffered whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .errors import bad_request

_MAX_HEADER_BYTES = 16 * 1024
_READ_HINT = 64 * 1024


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` content type; 400 if there is none."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise bad_request(f"Content-Type must be multipart/form-data, got {content_type!r}")
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    raise bad_request("multipart/form-data Content-Type has no boundary")


@dataclass
class PartHeaders:
    name: str | None
    filename: str | None
    headers: dict[str, str] = field(default_factory=dict)


def _parse_disposition(value: str) -> tuple[str | None, str | None]:
    name = filename = None
    for param in value.split(";")[1:]:
        key, _, raw = param.strip().partition("=")
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"'):
            raw = raw[1:-1]
        if key.lower() == "name":
            name = raw
        elif key.lower() == "filename":
            filename = raw
    return name, filename


class MultipartReader:
    """Reads parts one after another from an async stream of body chunks."""

    def __init__(self, chunks: AsyncIterator[bytes], boundary: bytes) -> None:
        self._chunks = chunks.__aiter__()
        self._buffer = bytearray()
        self._eof = False
        self._delimiter = b"\r\n--" + boundary
        self._first = b"--" + boundary
        self._started = False
        self._finished = False
        self._in_part = False

    async def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    async def _read_until(self, marker: bytes, limit: int) -> bytes:
        while True:
            index = self._buffer.find(marker)
            if index >= 0:
                data = bytes(self._buffer[:index])
                del self._buffer[: index + len(marker)]
                return data
            if len(self._buffer) > limit or not await self._fill():
                raise bad_request("Malformed multipart body")

    async def next_part(self) -> PartHeaders | None:
        """Headers of the next part, or None at the end of the body."""
        if self._in_part:
            async for _ in self.part_data():
                pass
        if self._finished:
            return None
        if not self._started:
            # Skip any preamble up to the first boundary line.
            await self._read_until(self._first, _MAX_HEADER_BYTES)
            self._started = True
        while len(self._buffer) < 2 and await self._fill():
            pass
        if self._buffer[:2] == b"--":
            self._finished = True
            return None
        raw = await self._read_until(b"\r\n\r\n", _MAX_HEADER_BYTES)
        headers: dict[str, str] = {}
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        name, filename = _parse_disposition(headers.get("content-disposition", ""))
        self._in_part = True
        return PartHeaders(name=name, filename=filename, headers=headers)

    async def part_data(self) -> AsyncIterator[bytes]:
        """The data of the current part, in chunks, up to the next boundary."""
        keep = len(self._delimiter) - 1
        while self._in_part:
            index = self._buffer.find(self._delimiter)
            if index >= 0:
                data = bytes(self._buffer[:index])
                del self._buffer[: index + len(self._delimiter)]
                self._in_part = False
                if data:
                    yield data
                return
            if len(self._buffer) > keep:
                # Everything but a possible partial delimiter at the end is data.
                data = bytes(self._buffer[:-keep])
                del self._buffer[:-keep]
                yield data
            if not await self._fill():
                raise bad_request("Malformed multipart body: missing closing boundary")

    async def read_part(self, limit: int) -> bytes:
        """The whole current part (small parts such as ``attributes``); 400 above ``limit``."""
        data = bytearray()
        async for chunk in self.part_data():
            data += chunk
            if len(data) > limit:
                raise bad_request(f"multipart part larger than {limit} bytes")
        return bytes(data)
