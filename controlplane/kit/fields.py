"""Validated values of user-chosen text, days and page tokens: each checked in one place, so
every route refuses the same things with the same 400 ``invalid-field``."""

from __future__ import annotations

import base64
import datetime as dt
import re
import unicodedata

from auth import unsafe_character
from controlplane.kit.errors import InvalidField

MAX_EMAIL_LENGTH = 254  # RFC 5321: the longest address a mail path carries
MAX_EMAIL_LOCAL_LENGTH = 64
MAX_DOMAIN_LABEL_LENGTH = 63
# Days the API takes (usage ranges, plan changes, credit expiry, export starts): wide enough for
# any real use, narrow enough that day arithmetic never leaves Python's date range.
EARLIEST_DAY = dt.date(2000, 1, 1)
LATEST_DAY = dt.date(2999, 12, 31)


def _checked_text(value: str, field: str, *, allow: str = "") -> str:
    unsafe = unsafe_character(value, allow=allow)
    if unsafe is not None:
        raise InvalidField(f"{field} contains {unsafe}", field=field)
    return unicodedata.normalize("NFC", value)


def display_name(value: str, *, field: str, max_length: int = 200) -> str:
    """A name shown to people (account, service account, API key): trimmed, NFC, 1 to
    ``max_length`` characters, no control, bidirectional-text or invisible characters."""
    value = _checked_text(value, field).strip()
    if not 1 <= len(value) <= max_length:
        raise InvalidField(f"{field} must be 1-{max_length} characters", field=field)
    return value


def free_text(value: str, *, field: str, max_length: int, min_length: int = 0) -> str:
    """A description or reason: like :func:`display_name` but line breaks and tabs pass."""
    value = _checked_text(value, field, allow="\n\t").strip()
    if not min_length <= len(value) <= max_length:
        raise InvalidField(f"{field} must be {min_length}-{max_length} characters", field=field)
    return value


_LOCAL_PART = re.compile(r"[^\s@\"(),:;<>\[\\\]]+")
_DOMAIN_LABEL = re.compile(r"[^\W_]+(?:-+[^\W_]+)*")


def email(value: str, *, field: str = "email") -> str:
    """An email address, trimmed and lowercased (NFC): ``local@domain`` where the local part
    has no spaces, quotes or specials and no empty dot-separated piece, and the domain has at
    least two labels of letters, digits and inner hyphens. At most 254 characters."""
    refused = InvalidField(f"{field} is not an email address", field=field)
    value = _checked_text(value, field).strip().lower()
    if len(value) > MAX_EMAIL_LENGTH or value.count("@") != 1:
        raise refused
    local, domain = value.split("@")
    if (
        not local
        or len(local) > MAX_EMAIL_LOCAL_LENGTH
        or not _LOCAL_PART.fullmatch(local)
        or "" in local.split(".")
    ):
        raise refused
    labels = domain.split(".")
    if len(labels) < 2 or not all(
        len(label) <= MAX_DOMAIN_LABEL_LENGTH and _DOMAIN_LABEL.fullmatch(label) for label in labels
    ):
        raise refused
    return value


def day(value: dt.date, *, field: str) -> dt.date:
    """A UTC day between 2000-01-01 and 2999-12-31."""
    if not EARLIEST_DAY <= value <= LATEST_DAY:
        raise InvalidField(
            f"{field} must lie between {EARLIEST_DAY} and {LATEST_DAY}, got {value}", field=field
        )
    return value


class PageToken:
    """Where the next page of a newest-first listing starts: opaque to clients, one token per
    position (canonical), always 11 characters (bounded). Only tokens this API returned
    decode; anything else is a 400 naming ``page_token``.

    Superseded by :mod:`controlplane.kit.paging` (sealed tokens bound to the list, account and
    filters), which every list route uses; kept for code written against it meanwhile."""

    LENGTH = 11
    _SHAPE = re.compile(r"[A-Za-z0-9_-]{11}")

    @staticmethod
    def encode(position: int) -> str:
        return base64.urlsafe_b64encode(position.to_bytes(8, "big")).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str, *, field: str = "page_token") -> int:
        refused = InvalidField(f"{field} is not one this API returned", field=field)
        if not cls._SHAPE.fullmatch(token):
            raise refused
        position = int.from_bytes(base64.urlsafe_b64decode(token + "="), "big")
        if not 0 < position < 2**63 or cls.encode(position) != token:
            raise refused
        return position
