"""Who may come in: API keys -> (tenant, tier), compared in constant time, never logged.

A request carries ``Authorization: Bearer <key>`` (as OpenAI's API and its
clients send it).  :class:`KeyStore` answers the key's
:class:`~solution.gateway.config.Principal` or ``None``; the gateway then
answers 401 before it reads the body, so a request without a valid key
never reaches a server and costs no server time.

Constant time: each stored key and the presented one are hashed (SHA-256)
and the digests compared with :func:`hmac.compare_digest` against *every*
stored key, without stopping at a match, so neither the position of a
matching key nor the length of a near miss shows in the response time
(``compare_digest`` on the raw strings would still leak their length).
Cost: O(K) digest comparisons for K keys (a few dozen in a course; a
large deployment would index by a key id and compare one secret).

Keys are never logged: nothing here formats a key into a message, and
:class:`KeyStore`'s ``repr`` shows only the number of keys.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from solution.gateway.config import Principal

__all__ = ["KeyStore", "bearer_token"]


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), else ``None``.  O(len)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyStore:
    """API keys and their principals, looked up in constant time.  Immutable after creation.

    >>> store = KeyStore({"sk-a": Principal("alice", "premium")})
    >>> store.lookup("Bearer sk-a").tenant, store.lookup("Bearer sk-b"), store.lookup(None)
    ('alice', None, None)

    Raises:
        TypeError: ``keys`` not a mapping of non-empty str -> Principal.
    """

    __slots__ = ("_entries",)

    def __init__(self, keys: Mapping[str, Principal]) -> None:
        if not isinstance(keys, Mapping):
            raise TypeError(f"keys must map API keys to Principal records, got {type(keys).__name__}")
        entries = []
        for key, principal in keys.items():
            if not isinstance(key, str) or not key:
                raise TypeError("every API key must be a non-empty str")
            if not isinstance(principal, Principal):
                raise TypeError(f"keys must map to Principal records, got {type(principal).__name__}")
            entries.append((_digest(key), principal))
        self._entries: tuple[tuple[bytes, Principal], ...] = tuple(entries)

    def lookup(self, authorization: str | None) -> Principal | None:
        """The principal of the ``Authorization`` header's bearer key, or ``None`` (missing, malformed or unknown).

        Compares against every key (no early exit): O(K).
        """
        token = bearer_token(authorization)
        presented = _digest(token if token is not None else "")
        found: Principal | None = None
        for digest, principal in self._entries:
            if hmac.compare_digest(digest, presented) and token is not None:
                found = principal
        return found

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"KeyStore({len(self._entries)} keys)"
