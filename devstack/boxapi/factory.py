"""Builds the server's state and ASGI app from a :class:`ServerConfig`."""

from __future__ import annotations

from . import admin, commit, items_api, oauth_api, sessions, uploads
from .app import BoxApiApp, State
from .auth import TokenService
from .blobs import BlobStore
from .config import ServerConfig
from .db import Database
from .items import ItemStore
from .ratelimit import RateLimiter
from .users import UserStore


def build_app(config: ServerConfig) -> BoxApiApp:
    """Open (or create) the data dir and return the app serving it.

    Raises :class:`devstack.boxapi.db.DataDirBusy` if another server owns the data dir.
    """
    db = Database(config.data_dir)
    blobs = BlobStore(config.data_dir)
    users = UserStore(db)
    items = ItemStore(db, blobs, users.developer()["id"])
    state = State(config=config, db=db, blobs=blobs, users=users, items=items, tokens=None)
    state.tokens = TokenService(db, users, config)
    state.limiter = RateLimiter(lambda: (config.calls_per_minute, config.uploads_per_minute))
    sessions.cleanup_sessions(state)
    routes = [*items_api.ROUTES, *uploads.ROUTES, *sessions.ROUTES, *commit.ROUTES, *oauth_api.ROUTES]
    return BoxApiApp(state, routes, admin.dispatch)
