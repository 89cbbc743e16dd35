"""Export cursors: where the next pull starts, signed and bound to what they came from.

A cursor is 35 bytes, base64url (47 characters): version (1), xid watermark (8), tags of the
database (4), the project (4) and the row filters (6), then an HMAC-SHA256 (12 bytes) with the
server's secret key over all of that *and* the full database and project ids. The tags only say
why a cursor is refused; the signature is what is trusted.
`selection` is the export request's `selection_key()`: a hash of the filters that choose rows.
"""

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass

from server.config import settings
from server.errors import Conflict, Invalid

CURSOR_VERSION = 3
_CURSOR = struct.Struct(">BQ4s4s6s")
_MAC_BYTES = 12
LEGACY_PREFIX = "j2"  # unsigned cursors issued before version 3: accepted only if a manifest recorded them

NOT_A_CURSOR = "after is not a cursor from this server; pass the Assay-Next-Cursor value of your last export."
OTHER_FILTERS = (
    "This cursor belongs to an export with other filters (granularity, batch_id, completed, since, until, "
    "min_agreement, aggregation, raters, gold, judges): repeat that export's filters, or start again without after."
)
TAMPERED = (
    "This cursor's signature does not match: it was altered, or the server's secret key changed since it was "
    "issued. Pass the Assay-Next-Cursor value of your last export unchanged, or start again without after."
)
OTHER_DATABASE = (
    "This cursor comes from another Assay database (not this one or a backup of it), so it cannot say which rows "
    "you already have here. Start a full pull without after and replace what you pulled from the other server."
)
OTHER_PROJECT = (
    "This cursor belongs to an export of another project. Pass the cursor of your last export of this project, "
    "or start a full pull without after."
)
AHEAD = (
    "This cursor is ahead of every transaction this database has run: it was issued by a server whose database "
    "has since been replaced by an older copy. Start a full pull without after to get every row this database holds."
)
UNRECORDED_LEGACY = (
    "This cursor is in an older, unsigned form and no export of this project recorded it. Start a full pull "
    "without after; every cursor you get from now on is signed."
)


def _mac(body: bytes, project_id: uuid.UUID, database_id: uuid.UUID) -> bytes:
    message = b"assay-export-cursor|" + body + project_id.bytes + database_id.bytes
    return hmac.new(settings.secret_key.encode(), message, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(xid: int, *, selection: str, project_id: uuid.UUID, database_id: uuid.UUID) -> str:
    body = _CURSOR.pack(CURSOR_VERSION, xid, database_id.bytes[:4], project_id.bytes[:4], bytes.fromhex(selection))
    return base64.urlsafe_b64encode(body + _mac(body, project_id, database_id)).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Cursor:
    xid: int
    legacy: bool = False  # an unsigned cursor, valid only if a manifest of this project recorded it


def decode_cursor(cursor: str | None, *, selection: str, project_id: uuid.UUID, database_id: uuid.UUID) -> Cursor:
    """The watermark a cursor carries, once it is shown to be ours, for this project and these filters."""
    if not cursor:
        return Cursor(0)
    if len(cursor) > 200:
        raise Invalid(NOT_A_CURSOR)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (ValueError, binascii.Error):
        raise Invalid(NOT_A_CURSOR) from None
    if raw.startswith(LEGACY_PREFIX.encode() + b":"):
        return _decode_legacy(raw, selection)
    if len(raw) != _CURSOR.size + _MAC_BYTES or raw[0] != CURSOR_VERSION:
        raise Invalid(NOT_A_CURSOR)
    body, mac = raw[: _CURSOR.size], raw[_CURSOR.size :]
    _, xid, database_tag, project_tag, tag = _CURSOR.unpack(body)
    if database_tag != database_id.bytes[:4]:
        raise Conflict(OTHER_DATABASE)
    if project_tag != project_id.bytes[:4]:
        raise Conflict(OTHER_PROJECT)
    if not hmac.compare_digest(mac, _mac(body, project_id, database_id)):
        raise Invalid(TAMPERED)
    if tag.hex() != selection:
        raise Invalid(OTHER_FILTERS)
    return Cursor(xid)


def _decode_legacy(raw: bytes, selection: str) -> Cursor:
    try:
        _, xid, key = raw.decode().split(":")
        value = int(xid)
    except (ValueError, UnicodeDecodeError):
        raise Invalid(NOT_A_CURSOR) from None
    if key != selection:
        raise Invalid(OTHER_FILTERS)
    return Cursor(value, legacy=True)
