"""The demo domain: customer activity events for churn prediction (see docs/background.md).

A seeded pool of customers recurs (some far more often than others). Each
customer has stable traits (age, region, plan, contract, payment...) and each
event adds the month's activity (usage, logins, support calls, charges). The
label is churn, drawn from a logistic function of the fields plus noise. A
``DriftSchedule`` moves feature distributions (abrupt, gradual, recurring) and
changes the label function (concept), all within the ranges the validation
rules allow, so drift is never mistaken for bad data.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from producers.event import LabelledEvent
from producers.schedule import DriftSchedule
from weir.clock import now_ms
from weir.contract.records import AttributeValue

SOURCE = "churn"
PLANS = ("basic", "standard", "premium")
CONTRACTS = ("monthly", "annual", "biennial")
PAYMENTS = ("card", "bank_transfer", "paypal", "invoice")
REGIONS = ("north", "south", "east", "west")
DEVICES = ("ios", "android", "web")
# Tenure advances one month every this many events: slowly enough that a stream without a drift
# schedule is stationary (the drift benchmark counts false alarms on it), yet never goes back.
EVENTS_PER_TENURE_MONTH = 1_000_000


@dataclass
class Customer:
    entity_id: str
    age: int
    region: str
    device: str
    plan: str
    contract: str
    payment_method: str
    autopay: bool
    family_plan: bool
    tenure_at_start: int
    base_usage_gb: float
    call_rate: float
    engagement: float  # 0..1, drives logins
    satisfaction: int | None


def _customer(rng: random.Random, index: int) -> Customer:
    plan = rng.choices(PLANS, weights=(5, 3, 2))[0]
    return Customer(
        entity_id=f"cust-{index:06d}",
        age=min(90, max(18, int(rng.gauss(42, 14)))),
        region=rng.choice(REGIONS),
        device=rng.choices(DEVICES, weights=(4, 4, 2))[0],
        plan=plan,
        contract=rng.choices(CONTRACTS, weights=(5, 3, 2))[0],
        payment_method=rng.choices(PAYMENTS, weights=(5, 3, 2, 1))[0],
        autopay=rng.random() < 0.6,
        family_plan=rng.random() < 0.25,
        tenure_at_start=min(96, int(rng.expovariate(1 / 20))),
        base_usage_gb=rng.lognormvariate(2.5 + PLANS.index(plan) * 0.4, 0.6),
        call_rate=rng.expovariate(1 / 1.5),
        engagement=rng.betavariate(2, 2),
        satisfaction=None if rng.random() < 0.08 else rng.choices((1, 2, 3, 4, 5), weights=(1, 2, 4, 5, 3))[0],
    )


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: fine for the small rates here, and reproducible with ``random.Random``."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class ChurnDomain:
    """Generates labelled churn events following a drift schedule."""

    def __init__(self, *, seed: int = 42, customers: int = 2_000, schedule: DriftSchedule = DriftSchedule()) -> None:
        self.seed = seed
        self.schedule = schedule
        rng = random.Random(seed)
        self.customers = [_customer(rng, i) for i in range(customers)]
        # Zipf-like popularity: a few customers are very active, most come back now and then.
        self.weights = [1.0 / (rank + 1) ** 0.8 for rank in range(customers)]

    def events(self, count: int, event_time: Callable[[int], int] | None = None) -> Iterator[LabelledEvent]:
        rng = random.Random(self.seed + 1)
        stamp = event_time or (lambda _i: now_ms())
        picks = rng.choices(self.customers, weights=self.weights, k=count)
        for i, customer in enumerate(picks):
            attributes = self._activity(rng, customer, i)
            yield LabelledEvent(
                event_id=f"{SOURCE}-{self.seed}-{i:09d}",
                entity_id=customer.entity_id,
                event_time_ms=stamp(i),
                attributes=attributes,
                label=rng.random() < self._churn_probability(attributes, i, rng),
            )

    def _activity(self, rng: random.Random, c: Customer, i: int) -> dict[str, AttributeValue]:
        s = self.schedule
        abrupt, gradual, season = s.intensity("abrupt", i), s.intensity("gradual", i), s.intensity("recurring", i)
        tenure = min(120, c.tenure_at_start + i // EVENTS_PER_TENURE_MONTH)
        # abrupt: a price rise, and customers moving to paypal
        price = (20 + 25 * PLANS.index(c.plan) + rng.gauss(0, 6)) * (1 + 0.35 * abrupt)
        monthly = round(min(200.0, max(15.0, price)), 2)
        payment = "paypal" if abrupt and rng.random() < 0.4 * abrupt else c.payment_method
        # gradual: data usage grows and the android app takes over
        usage = min(500.0, c.base_usage_gb * (1 + 0.8 * gradual) * rng.lognormvariate(0, 0.25))
        device = "android" if gradual and rng.random() < 0.5 * gradual else c.device
        # recurring (a season): fewer logins, more support calls, then back to normal
        logins = min(30, max(0, round(30 * c.engagement * (1 - 0.5 * season) + rng.gauss(0, 3))))
        calls = min(30, _poisson(rng, c.call_rate * (1 + 1.5 * season)))
        since_login = rng.randint(0, 29) if logins > 0 else rng.randint(30, 365)
        discount = round(rng.choice((0.0, 0.0, 0.0, 5.0, 10.0, 20.0)) + (10.0 if c.contract == "biennial" else 0), 1)
        total = round(monthly * (tenure + rng.uniform(0.3, 1.0)), 2)
        return {
            "age": c.age,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "num_products": 1 + PLANS.index(c.plan) + (1 if c.family_plan else 0),
            "support_calls_30d": calls,
            "data_usage_gb": round(usage, 3),
            "login_days_30d": logins,
            "days_since_last_login": since_login,
            "late_payments_12m": min(12, _poisson(rng, 0.3 if c.autopay else 1.2)),
            "discount_pct": discount,
            "satisfaction_score": c.satisfaction,
            "plan": c.plan,
            "contract": c.contract,
            "payment_method": payment,
            "region": c.region,
            "device": device,
            "autopay": c.autopay,
            "family_plan": c.family_plan,
        }

    def _churn_probability(self, a: dict[str, AttributeValue], i: int, rng: random.Random) -> float:
        concept = self.schedule.intensity("concept", i)
        x = {k: float(v) for k, v in a.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        satisfaction = x.get("satisfaction_score", 3.0)  # not surveyed: neutral
        # After a concept drift, price drives churn, support calls stop predicting it, and long contracts
        # no longer hold customers (a competitor buys them out).
        before = {"monthly": 1.0, "annual": -0.4, "biennial": -1.2}[str(a["contract"])]
        after = {"monthly": -0.9, "annual": 0.6, "biennial": 1.6}[str(a["contract"])]
        contract_effect = before + (after - before) * concept
        price_weight = 0.015 + 0.05 * concept
        calls_weight = 0.45 * (1 - 0.8 * concept)
        logit = (
            -1.6
            + calls_weight * (x["support_calls_30d"] - 2)
            - 0.035 * (x["tenure_months"] - 24)
            + contract_effect
            + 0.35 * x["late_payments_12m"]
            - 0.45 * (satisfaction - 3)
            + 0.015 * (x["monthly_charges"] - 60) + (price_weight - 0.015) * (x["monthly_charges"] - 40)
            - 0.04 * (x["login_days_30d"] - 15)
            - (0.4 if a["autopay"] else 0.0)
            + rng.gauss(0, 0.4)
        )
        return 1.0 / (1.0 + math.exp(-1.8 * logit))
