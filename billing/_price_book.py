"""The price book: a versioned YAML file of plans, validated with file, line and reason.

Money and rates are read from the YAML *source text* of each scalar (``yaml.compose``, never
``yaml.safe_load``), so ``50.10`` becomes ``Decimal("50.10")`` without ever being a float.
The format is documented in ``docs/billing.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MILLION = 1_000_000
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_NUMBER_RE = re.compile(r"^\d+(\.\d+)?$")


class PriceBookError(Exception):
    """A price book that cannot be used; says where and why."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class ActionTier:
    """Actions of the account's monthly total up to ``up_to`` (None: no upper bound) cost
    ``price_per_million`` per million."""

    up_to: int | None
    price_per_million: Decimal


@dataclass(frozen=True)
class PlanFee:
    """Either ``flat`` or ``percent_of_usage`` (with ``minimum``)."""

    flat: Decimal | None = None
    percent_of_usage: Decimal | None = None
    minimum: Decimal = Decimal(0)


@dataclass(frozen=True)
class Plan:
    name: str
    fee: PlanFee
    included_actions: int
    included_active_gbh: Decimal
    included_retained_gbh: Decimal
    action_tiers: tuple[ActionTier, ...]
    active_storage_per_gbh: Decimal
    retained_storage_per_gbh: Decimal


@dataclass(frozen=True)
class PriceBook:
    version: str
    currency: str
    plans: dict[str, Plan]


def load_price_book(path: Path) -> PriceBook:
    """Read and validate ``path``; :class:`PriceBookError` names the file, line and reason."""
    return parse_price_book(path.read_text(encoding="utf-8"), str(path))


def parse_price_book(text: str, path: str = "<price book>") -> PriceBook:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise PriceBookError(path, line, f"not valid YAML: {exc.problem}") from None
    if root is None:
        raise PriceBookError(path, 1, "the file is empty")
    return _Reader(path).price_book(root)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: Node, reason: str) -> PriceBookError:
        return PriceBookError(self.path, _line(node), reason)

    def mapping(
        self,
        node: Node,
        what: str,
        *,
        required: set[str],
        optional: frozenset[str] | set[str] = frozenset(),
    ) -> dict[str, tuple[Node, Node]]:
        """The mapping's entries by key (key node, value node), refusing duplicate, unknown
        and missing keys."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        entries: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = self.text(key_node, f"a key of {what}")
            if key in entries:
                raise self.fail(key_node, f"{what}: duplicate key {key!r}")
            if key not in required | optional:
                allowed = ", ".join(sorted(required | optional))
                raise self.fail(key_node, f"{what}: unknown key {key!r} (allowed: {allowed})")
            entries[key] = (key_node, value_node)
        missing = sorted(required - entries.keys())
        if missing:
            raise self.fail(node, f"{what}: missing {', '.join(missing)}")
        return entries

    def text(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode) or node.value == "":
            raise self.fail(node, f"{what} must be a non-empty scalar")
        return str(node.value)

    def decimal(self, node: Node, what: str) -> Decimal:
        """A non-negative decimal written as digits with an optional fraction (quoted or not)."""
        raw = self.text(node, what).strip()
        if not _NUMBER_RE.match(raw):
            raise self.fail(node, f"{what} must be a non-negative decimal number, got {raw!r}")
        try:
            return Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
            raise self.fail(node, f"{what} is not a number: {raw!r}") from None

    def integer(self, node: Node, what: str) -> int:
        value = self.decimal(node, what)
        if value != value.to_integral_value():
            raise self.fail(node, f"{what} must be a whole number, got {value}")
        return int(value)

    def price_book(self, root: Node) -> PriceBook:
        entries = self.mapping(root, "the price book", required={"version", "currency", "plans"})
        version = self.text(entries["version"][1], "version")
        currency_node = entries["currency"][1]
        currency = self.text(currency_node, "currency")
        if not _CURRENCY_RE.match(currency):
            raise self.fail(currency_node, f"currency must be an ISO 4217 code, got {currency!r}")
        plans_node = entries["plans"][1]
        if not isinstance(plans_node, MappingNode) or not plans_node.value:
            raise self.fail(plans_node, "plans must be a non-empty mapping of plan name to plan")
        plan_names = {self.text(key, "a plan name") for key, _ in plans_node.value}
        plans = self.mapping(plans_node, "plans", required=plan_names)
        return PriceBook(
            version=version,
            currency=currency,
            plans={name: self.plan(name, value) for name, (_, value) in plans.items()},
        )

    def plan(self, name: str, node: Node) -> Plan:
        what = f"plan {name!r}"
        entries = self.mapping(
            node, what, required={"fee", "action_tiers"}, optional={"included", "storage"}
        )
        included: dict[str, tuple[Node, Node]] = {}
        if "included" in entries:
            included = self.mapping(
                entries["included"][1],
                f"{what} included",
                required=set(),
                optional={"actions", "active_gbh", "retained_gbh"},
            )
        storage: dict[str, tuple[Node, Node]] = {}
        if "storage" in entries:
            storage = self.mapping(
                entries["storage"][1],
                f"{what} storage",
                required={"active_per_gbh", "retained_per_gbh"},
            )

        def amount(entries: dict[str, tuple[Node, Node]], key: str, label: str) -> Decimal:
            return (
                self.decimal(entries[key][1], f"{what} {label}") if key in entries else Decimal(0)
            )

        return Plan(
            name=name,
            fee=self.fee(what, entries["fee"][1]),
            included_actions=(
                self.integer(included["actions"][1], f"{what} included actions")
                if "actions" in included
                else 0
            ),
            included_active_gbh=amount(included, "active_gbh", "included active_gbh"),
            included_retained_gbh=amount(included, "retained_gbh", "included retained_gbh"),
            action_tiers=self.tiers(what, entries["action_tiers"][1]),
            active_storage_per_gbh=amount(storage, "active_per_gbh", "storage active_per_gbh"),
            retained_storage_per_gbh=amount(
                storage, "retained_per_gbh", "storage retained_per_gbh"
            ),
        )

    def fee(self, what: str, node: Node) -> PlanFee:
        entries = self.mapping(
            node,
            f"{what} fee",
            required=set(),
            optional={"flat", "percent_of_usage", "minimum"},
        )
        if ("flat" in entries) == ("percent_of_usage" in entries):
            raise self.fail(node, f"{what} fee: give exactly one of flat or percent_of_usage")
        if "flat" in entries:
            if "minimum" in entries:
                raise self.fail(
                    entries["minimum"][0], f"{what} fee: minimum only goes with percent_of_usage"
                )
            return PlanFee(flat=self.decimal(entries["flat"][1], f"{what} fee flat"))
        percent_node = entries["percent_of_usage"][1]
        percent = self.decimal(percent_node, f"{what} fee percent_of_usage")
        if not Decimal(0) < percent <= Decimal(100):
            raise self.fail(percent_node, f"{what} fee percent_of_usage must be in (0, 100]")
        minimum = (
            self.decimal(entries["minimum"][1], f"{what} fee minimum")
            if "minimum" in entries
            else Decimal(0)
        )
        return PlanFee(percent_of_usage=percent, minimum=minimum)

    def tiers(self, what: str, node: Node) -> tuple[ActionTier, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            raise self.fail(node, f"{what} action_tiers must be a non-empty list")
        tiers: list[ActionTier] = []
        previous = 0
        for index, tier_node in enumerate(node.value):
            last = index == len(node.value) - 1
            entries = self.mapping(
                tier_node,
                f"{what} action tier {index + 1}",
                required={"price_per_million"},
                optional={"up_to_millions"},
            )
            price = self.decimal(
                entries["price_per_million"][1], f"{what} action tier {index + 1} price_per_million"
            )
            if "up_to_millions" not in entries:
                if not last:
                    raise self.fail(
                        tier_node,
                        f"{what} action tier {index + 1}: only the last tier may omit "
                        "up_to_millions",
                    )
                tiers.append(ActionTier(up_to=None, price_per_million=price))
                continue
            bound_node = entries["up_to_millions"][1]
            up_to = self.decimal(bound_node, f"{what} action tier {index + 1} up_to_millions")
            up_to_actions = up_to * MILLION
            if up_to_actions != up_to_actions.to_integral_value() or up_to_actions <= previous:
                raise self.fail(
                    bound_node,
                    f"{what} action tier {index + 1}: up_to_millions must be a whole number of "
                    f"actions above the previous tier's bound ({Decimal(previous) / MILLION}M)",
                )
            if last:
                raise self.fail(
                    tier_node,
                    f"{what} action tier {index + 1}: the last tier must not have up_to_millions "
                    "(it prices every action above the previous tier)",
                )
            previous = int(up_to_actions)
            tiers.append(ActionTier(up_to=previous, price_per_million=price))
        return tuple(tiers)
