"""Drive v3 API handlers: files (list, get with ``alt=media``, create, update, delete),
uploads and Shared Drives. Errors are :class:`~.store.DriveApiError` with Drive's reasons."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from .query import QueryError, parse_fields, parse_q, select
from .store import FOLDER, DriveApiError
from .uploads import split_multipart

if TYPE_CHECKING:
    from .app import State

DEFAULT_FILE_FIELDS = "kind,id,name,mimeType"
DEFAULT_LIST_FIELDS = "kind,nextPageToken,incompleteSearch,files(kind,id,name,mimeType)"


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _all_drives(request: Request) -> bool:
    return _flag(request, "supportsAllDrives") or _flag(request, "supportsTeamDrives")


def render(record: dict[str, Any] | list[Any], fields: str | None, default: str = DEFAULT_FILE_FIELDS) -> Any:
    try:
        tree = parse_fields(fields or default)
    except QueryError as exc:
        raise DriveApiError(400, "invalidParameter", str(exc)) from None
    if isinstance(record, dict):
        record = {k: v for k, v in record.items() if not k.startswith("_")}
    return select(record, tree)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise DriveApiError(400, "parseError", "Parse Error: the request body is not JSON.") from None
    if not isinstance(body, dict):
        raise DriveApiError(400, "parseError", "The request body must be a JSON object.")
    return body


async def handle(operation: str, params: dict[str, str], request: Request, state: State, principal: str) -> Response:
    q = request.query_params
    store = state.store
    fields = q.get("fields")
    if operation == "files.list":
        return _list(request, state, principal)
    if operation == "files.get":
        record = store.get(params["id"], principal, all_drives=_all_drives(request))
        if q.get("alt") == "media":
            return _download(request, state, record)
        return JSONResponse(render(record, fields))
    if operation == "files.create":
        metadata = await _json_body(request)
        return JSONResponse(render(store.create(metadata, principal, all_drives=_all_drives(request)), fields))
    if operation == "files.update":
        record = store.get(params["id"], principal, all_drives=_all_drives(request))
        metadata = await _json_body(request)
        store.update(
            record, metadata, q.get("addParents"), q.get("removeParents"), principal, all_drives=_all_drives(request)
        )
        return JSONResponse(render(record, fields))
    if operation == "files.delete":
        store.delete(store.get(params["id"], principal, all_drives=_all_drives(request)))
        return Response(status_code=204)
    if operation in ("upload.start", "upload.chunk", "upload.cancel"):
        return await _upload(operation, params, request, state, principal)
    return await _drives(operation, params, request, state)


def _page_offset(page_token: str | None, fingerprint: str) -> int:
    """Where the page ``page_token`` asks for starts (0 without one); 400 when the token is not
    one of ours or was given for another query (``fingerprint``)."""
    if not page_token:
        return 0
    try:
        token = json.loads(base64.urlsafe_b64decode(page_token.encode()))
        if token["f"] != fingerprint:
            raise ValueError("page token of another query")
        return int(token["o"])
    except (ValueError, KeyError, TypeError):
        raise DriveApiError(400, "invalid", f"Invalid Value for pageToken: {page_token[:40]!r}") from None


def _list(request: Request, state: State, principal: str) -> Response:
    q = request.query_params
    all_drives = _all_drives(request)
    include = _flag(request, "includeItemsFromAllDrives") or _flag(request, "includeTeamDriveItems")
    corpora = q.get("corpora", "user")
    drive_id = q.get("driveId")
    if include and not all_drives:
        raise DriveApiError(
            403,
            "teamDrivesSupportRequired",
            "The includeItemsFromAllDrives parameter can only be "
            "set to true when supportsAllDrives is also set to true.",
        )
    if corpora == "drive" and (not drive_id or not include):
        raise DriveApiError(400, "invalid", "corpora=drive needs driveId and includeItemsFromAllDrives=true.")
    if drive_id and corpora != "drive":
        raise DriveApiError(400, "invalid", "driveId is given but corpora is not 'drive'.")
    if corpora not in ("user", "drive", "allDrives"):
        raise DriveApiError(400, "invalid", f"Invalid Value for corpora: {corpora!r} (user, drive or allDrives)")
    if drive_id and drive_id not in state.store.drives:
        raise DriveApiError(404, "notFound", f"Shared drive not found: {drive_id}")
    query = q.get("q")
    if query and "'root' in parents" in query:  # My Drive's alias, as in files.get
        query = query.replace("'root' in parents", f"'{state.store.root_of(principal)}' in parents")
    try:
        predicate = parse_q(query)
    except QueryError as exc:
        raise DriveApiError(400, "invalid", str(exc)) from None
    size = int(q.get("pageSize", "100"))
    if not 1 <= size <= 1000:
        raise DriveApiError(400, "invalid", f"Invalid Value for pageSize: {size} (1-1000)")
    matched = [
        r
        for r in state.store.listing(principal, corpora=corpora, drive_id=drive_id, all_drives=include)
        if predicate(r)
    ]
    if q.get("orderBy") in ("name", "name_natural"):
        matched.sort(key=lambda r: r["name"])
    # a page token is only good for the query it came from
    asked = sorted((k, v) for k, v in q.items() if k not in ("pageToken", "fields", "alt"))
    fingerprint = hashlib.sha1(repr(asked).encode()).hexdigest()[:12]
    offset = _page_offset(q.get("pageToken"), fingerprint)
    page = matched[offset : offset + size]
    body: dict[str, Any] = {
        "kind": "drive#fileList",
        "incompleteSearch": False,
        "files": [render(r, "*") for r in page],
    }
    if offset + size < len(matched):
        body["nextPageToken"] = base64.urlsafe_b64encode(
            json.dumps({"o": offset + size, "f": fingerprint}).encode()
        ).decode()
    return JSONResponse(render(body, q.get("fields"), DEFAULT_LIST_FIELDS))


def _download(request: Request, state: State, record: dict[str, Any]) -> Response:
    if record["mimeType"] == FOLDER:
        raise DriveApiError(403, "fileNotDownloadable", "Only files with binary content can be downloaded.")
    path = state.store.blob(record["id"])
    size = path.stat().st_size
    wanted = request.headers.get("range")
    headers = {"Content-Length": str(size), "Accept-Ranges": "bytes"}
    if wanted and wanted.startswith("bytes=") and size:
        first, _, last = wanted[6:].partition("-")
        start = int(first) if first else max(0, size - int(last))
        end = min(int(last), size - 1) if first and last else size - 1
        if start >= size or start > end:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        with open(path, "rb") as handle:  # ranges are for resuming downloads: small enough to hold
            handle.seek(start)
            data = handle.read(end - start + 1)
        return Response(
            data,
            status_code=206,
            media_type="application/octet-stream",
            headers={"Content-Range": f"bytes {start}-{end}/{size}"},
        )
    return FileResponse(path, media_type=record["mimeType"], headers=headers)


async def _upload(operation: str, params: dict[str, str], request: Request, state: State, principal: str) -> Response:
    q = request.query_params
    uploads = state.uploads
    if operation in ("upload.chunk", "upload.cancel"):
        session = uploads.get(q.get("upload_id", ""))
        if session.principal != principal:
            raise DriveApiError(404, "notFound", "Upload session not found.")
        if operation == "upload.cancel":
            uploads.cancel(session.id)
            return Response(status_code=499)
        keep = getattr(request.state, "keep_bytes", None)  # a keep_part fault (faults.py)
        record = uploads.put(session, request.headers.get("content-range"), await request.body(), keep=keep)
        if record is None:
            headers = {"Range": f"bytes=0-{session.received - 1}"} if session.received else {}
            return Response(status_code=308, headers=headers)
        return JSONResponse(render(record, session.fields))
    kind = q.get("uploadType", "")
    file_id = params.get("id")
    all_drives = _all_drives(request)
    if file_id is not None:
        state.store.get(file_id, principal, all_drives=all_drives)
    if kind == "resumable":
        metadata = await _json_body(request)
        declared = request.headers.get("x-upload-content-length")
        session = uploads.start(
            principal, metadata, all_drives=all_drives, fields=q.get("fields"), file_id=file_id, declared=declared
        )
        url = request.url
        location = f"{url.scheme}://{url.netloc}/upload/drive/v3/files?uploadType=resumable&upload_id={session.id}"
        return Response(status_code=200, headers={"Location": location, "X-GUploader-UploadID": session.id})
    body = await request.body()
    if kind == "multipart":
        metadata, content = split_multipart(request.headers.get("content-type", ""), body)
    elif kind == "media":
        metadata, content = {}, body
    else:
        raise DriveApiError(400, "invalid", f"Invalid Value for uploadType: {kind!r} (media, multipart, resumable)")
    record = uploads.whole(principal, metadata, content, all_drives=all_drives, file_id=file_id)
    return JSONResponse(render(record, q.get("fields")))


async def _drives(operation: str, params: dict[str, str], request: Request, state: State) -> Response:
    store = state.store
    if operation == "drives.create":
        request_id = request.query_params.get("requestId")
        if not request_id:
            raise DriveApiError(400, "required", "Required parameter: requestId")
        body = await _json_body(request)
        return JSONResponse(store.create_drive(str(body.get("name") or "Untitled"), request_id))
    if operation == "drives.get":
        drive = store.drives.get(params["id"])
        if drive is None:
            raise DriveApiError(404, "notFound", f"Shared drive not found: {params['id']}")
        return JSONResponse(drive)
    return JSONResponse({"kind": "drive#driveList", "drives": list(store.drives.values())})
