"""The price book is read when Stratus starts: a malformed one, an unreadable one or a default
plan it lacks stops ``stratus up`` before any process or cell starts, naming the file, the line
and the reason; the shipped price book is valid."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support import STRATUS, free_port

from billing import PriceBookError
from controlplane.config import Settings
from controlplane.pricing import load_pricing

BROKEN = """\
version: "2027-01"
currency: USD
plans:
  essentials:
    fee: {flat: 100}
    action_tiers:
      - {up_to_millions: 5, price_per_million: 50}
      - {up_to_millions: 5, price_per_million: 45}
      - {price_per_million: 40}
"""


def _up(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    environment.update(env)
    return subprocess.run(
        [STRATUS, "up", "--data-dir", str(data_dir), "--api-port", str(free_port()),
         "--gateway-port", str(free_port()), "--gateway-api-key-port", str(free_port())],
        env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "default_plan", "expected"),
    [
        (
            BROKEN,
            "essentials",
            ":8: plan 'essentials' action tier 2: up_to_millions must be a whole number of "
            "actions above the previous tier's bound (5M)",
        ),
        ("version: 1\ncurrency: usd\nplans: {}\n", "essentials", ":2: currency must be an ISO"),
        (BROKEN.replace("up_to_millions: 5, price_per_million: 45", "up_to_millions: 9, "
                        "price_per_million: 45"),
         "business", ":1: the default plan 'business' (STRATUS_DEFAULT_PLAN) is not one of"),
    ],
    ids=["tier bounds", "currency", "default plan"],
)  # fmt: skip
def test_stratus_up_refuses_a_bad_price_book_with_file_line_and_reason(
    tmp_path: Path, text: str, default_plan: str, expected: str
) -> None:
    book = tmp_path / "prices.yaml"
    book.write_text(text)
    result = _up(tmp_path / "data", STRATUS_PRICE_BOOK=str(book), STRATUS_DEFAULT_PLAN=default_plan)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"stratus up: refusing the price book: {book}{expected}" in result.stderr
    assert "Stratus is up" not in result.stdout
    # Nothing was started: no cell directory, no database.
    assert not (tmp_path / "data" / "cells").exists()
    assert not (tmp_path / "data" / "stratus.db").exists()


def test_a_missing_price_book_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(PriceBookError, match=r"nowhere\.yaml:1: cannot read the price book"):
        load_pricing(Settings(data_dir=tmp_path, price_book=missing))


def test_the_shipped_price_book_is_valid_and_has_the_default_plan() -> None:
    pricing = load_pricing(Settings())
    assert pricing.default_plan in pricing.book.plans
    assert set(pricing.book.plans) == {"essentials", "business"}
    assert pricing.book.currency == "USD"
