"""The price book file: a valid one is read exactly (money as Decimal, straight from the YAML
text), and a malformed one is refused with its file name, the offending line and the reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from billing import ActionTier, PlanFee, PriceBookError, load_price_book

VALID = """\
version: "2026-11"
currency: USD
plans:
  essentials:
    fee:
      flat: 100
    included:
      actions: 1000000
      active_gbh: 1000
      retained_gbh: 40000
    action_tiers:
      - up_to_millions: 5
        price_per_million: 50.00
      - up_to_millions: 10
        price_per_million: "45.00"
      - price_per_million: 40.10
    storage:
      active_per_gbh: 0.042
      retained_per_gbh: 0.00105
  usage_based:
    fee:
      percent_of_usage: 10
      minimum: 200
    action_tiers:
      - price_per_million: 25
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return path


def test_valid_price_book_is_read_exactly(tmp_path: Path) -> None:
    """Unquoted 40.10 and 0.00105 keep every digit (no float on the way); sections left out
    (included, storage) are zero."""
    book = load_price_book(_write(tmp_path, VALID))
    assert (book.version, book.currency) == ("2026-11", "USD")
    essentials = book.plans["essentials"]
    assert essentials.fee == PlanFee(flat=Decimal("100"))
    assert essentials.included_actions == 1_000_000
    assert essentials.included_active_gbh == Decimal(1000)
    assert essentials.included_retained_gbh == Decimal(40000)
    assert essentials.action_tiers == (
        ActionTier(up_to=5_000_000, price_per_million=Decimal("50.00")),
        ActionTier(up_to=10_000_000, price_per_million=Decimal("45.00")),
        ActionTier(up_to=None, price_per_million=Decimal("40.10")),
    )
    assert str(essentials.retained_storage_per_gbh) == "0.00105"
    usage_based = book.plans["usage_based"]
    assert usage_based.fee == PlanFee(percent_of_usage=Decimal(10), minimum=Decimal(200))
    assert usage_based.included_actions == 0
    assert usage_based.active_storage_per_gbh == Decimal(0)


def _broken(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new, 1)


# (case, text, line, reason fragment). Lines are 1-based lines of the file as written; VALID
# has 25 lines, a missing key is reported where its mapping starts.
MALFORMED = [
    ("not yaml", "version: [1\n", 2, "not valid YAML"),
    ("empty file", "", 1, "the file is empty"),
    ("top level list", "- 1\n", 1, "the price book must be a mapping"),
    ("missing currency", _broken("currency: USD\n", ""), 1, "missing currency"),
    ("bad currency", _broken("currency: USD", "currency: dollars"), 2, "ISO 4217"),
    ("unknown top key", VALID + "discounts: 1\n", 26, "unknown key 'discounts'"),
    ("no plans", 'version: "1"\ncurrency: USD\nplans: {}\n', 3, "non-empty mapping"),
    ("duplicate plan", VALID + "  essentials:\n    fee: {flat: 1}\n", 26, "duplicate key"),
    ("unknown plan key", _broken("    fee:\n      flat: 100", "    fees:\n      flat: 100"), 5,
     "unknown key 'fees'"),
    ("negative money", _broken("flat: 100", "flat: -100"), 6, "non-negative decimal"),
    ("money with unit", _broken("flat: 100", "flat: $100"), 6, "non-negative decimal"),
    ("float exponent", _broken("flat: 100", "flat: 1e2"), 6, "non-negative decimal"),
    ("flat and percent", _broken("flat: 100", "flat: 100\n      percent_of_usage: 5"), 6,
     "exactly one of flat or percent_of_usage"),
    ("minimum with flat", _broken("flat: 100", "flat: 100\n      minimum: 5"), 7,
     "minimum only goes with percent_of_usage"),
    ("percent over 100", _broken("percent_of_usage: 10", "percent_of_usage: 101"), 22,
     "must be in (0, 100]"),
    ("fractional actions", _broken("actions: 1000000", "actions: 1000000.5"), 8,
     "whole number"),
    ("tiers not rising", _broken("up_to_millions: 10", "up_to_millions: 5"), 14,
     "above the previous tier's bound (5M)"),
    ("open tier not last", _broken("      - up_to_millions: 5\n", "      - "), 12,
     "only the last tier may omit up_to_millions"),
    ("bounded last tier", _broken("      - price_per_million: 40.10",
                                  "      - up_to_millions: 20\n        price_per_million: 40.10"),
     16, "the last tier must not have up_to_millions"),
    ("no tiers", _broken("      - price_per_million: 25\n", "      []\n"), 25,
     "action_tiers must be a non-empty list"),
    ("storage half given", _broken("      retained_per_gbh: 0.00105\n", ""), 18,
     "missing retained_per_gbh"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [pytest.param(text, line, reason, id=case) for case, text, line, reason in MALFORMED],
)
def test_malformed_price_book_is_refused_with_file_line_and_reason(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PriceBookError) as refused:
        load_price_book(path)
    assert refused.value.path == str(path)
    assert reason in refused.value.reason
    assert refused.value.line == line, refused.value
    assert str(refused.value).startswith(f"{path}:{line}: ")
