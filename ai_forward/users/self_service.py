"""What a key holder may do with their own issued key, without the admin token.

    POST /v1/aifd/key/reset   `Authorization: Bearer aifd-...` → a new key; the old one
                              stops working at once, on every instance

Served whenever keys can be issued (the user store is always there), so a user
whose key leaked needs nobody to replace it. The answer is the user's record as
`GET /admin/users/<name>` shows it, plus the new `key`, shown this once.
"""

from __future__ import annotations

import time

from loguru import logger
from starlette.responses import Response

from ..errors import Conflict, GatewayError, NotFound, ServiceUnavailable, Unauthorized
from ..keys import find_key
from ..types import Receive, Scope, Send
from . import accounts
from .admin import MethodNotAllowed, answer, json
from .store import UserStore
from .user import KEY_PREFIX, hash_key, iso, new_key

MOUNT = "/v1/aifd"
RESET = "/v1/aifd/key/reset"


class KeySelfService:
    """The ASGI app mounted at /v1/aifd: never forwarded upstream."""

    def __init__(self, store: UserStore) -> None:
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["path"].rstrip("/") != RESET:
                raise NotFound(f"no call {scope['path']}; a key holder may POST {RESET}")
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"{scope['method']} {RESET}: use POST")
            response = await self.reset(scope)
        except GatewayError as err:
            await answer(scope, receive, send, err)
        except Exception as exc:
            logger.warning("key reset by its holder failed: {}", exc)
            message = "the user store is unreachable or failed; retry shortly"
            await answer(scope, receive, send, ServiceUnavailable(message))
        else:
            await response(scope, receive, send)

    async def reset(self, scope: Scope) -> Response:
        key = find_key(scope["headers"])
        if key is None or not key.value.startswith(KEY_PREFIX):
            raise Unauthorized(
                f"send the issued key to replace as `Authorization: Bearer {KEY_PREFIX}...`"
            )
        user = await self.store.by_key_hash(hash_key(key.value))
        if user is None:
            raise Unauthorized(
                "this aifd- key is not valid: it was reset or deleted, or never issued here; "
                "ask the gateway's administrator for a current key"
            )
        if user.expired(time.time()):
            raise Unauthorized(
                f"this key expired at {iso(user.expires_at)}; ask the gateway's administrator "
                "to extend it",
                code="key_expired",
            )
        fresh = new_key()
        changed = accounts.with_key(user, fresh)
        try:
            await accounts.replace(self.store, user, changed)
        except accounts.NoSuchUser:
            raise Unauthorized("this key's user was deleted meanwhile") from None
        except accounts.ChangedMeanwhile:
            raise Conflict("this key's user was changed meanwhile; retry the reset") from None
        logger.info("user {} reset their own key", user.name)
        return json({**changed.public(), "key": fresh})
