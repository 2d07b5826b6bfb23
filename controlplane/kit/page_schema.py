"""The part of a paged list's response every list shares (no FastAPI or ORM here: the typed
client and the CLI read these schemas)."""

from __future__ import annotations

from pydantic import BaseModel, Field

NEXT_PAGE_DOC = (
    "Pass as page_token (with the same filters) for the next page; empty on the last page"
)


class PagedList(BaseModel):
    """Base of every list response: its rows, and where the next page starts."""

    next_page_token: str = Field(default="", description=NEXT_PAGE_DOC)
