"""A model's automation policy: when to retrain, how, and what evidence moves a challenger to champion.

One challenger runs at a time: a retraining waits until the trial before it ended.

A policy is YAML a person writes and reads (``weir policy show``); it is
versioned by its own ``version`` number, and every decision the controller
takes names the policy version it acted under. Unknown keys are refused, so a
misspelt gate fails loudly instead of being ignored.

    model: churn
    version: 3
    mode: automatic            # or propose: decisions wait for `weir policy approve`
    retrain:
      on_alerts: [concept_drift, performance_drop]
      every_labels: null       # also retrain on a schedule, in labels
      method: incremental      # full, incremental or online
      window_labels: 3000
      factory: null            # full or online: a challenger of another kind (default: the champion's)
      params: {}               # its hyperparameters
      candidates: []           # full: or an experiment on the window, e.g. [{factory: hoeffding_tree,
                               # params: {grace_period: [50, 200]}}]; the lowest prequential loss wins
    promotion:
      min_labels: 3000         # no step up on fewer paired labels
      false_promotion: 0.05    # the error rate the sequential test holds
      min_gain: 0.005          # the loss per event a challenger must be proven to save
      canary_steps: [20, 50]   # percent of entities
      step_labels: 200
    rollback:
      false_rollback: 0.01
      min_loss: 0.005          # the loss per event a canary must be proven to add
      min_labels: 1000         # no rollback on fewer paired labels
    limits:
      max_canary_percent: 50
      cooldown_labels: 2000
      give_up_labels: 20000    # a challenger not proven better by then is retired
    business:                  # optional: what outcomes are worth, for `weir report`
      true_positive: 40        # a churner flagged and kept
      false_positive: -5       # an offer sent to a customer who would have stayed
      false_negative: -60      # a churner missed
      currency: EUR
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from weir.errors import ConfigError, invalid
from weir.registry.candidates import CandidateSpec, expand
from weir.registry.factories import build_model, encode_params

Method = Literal["full", "incremental", "online"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retrain(_Strict):
    on_alerts: tuple[str, ...] = ("concept_drift", "performance_drop")
    on_severities: tuple[Literal["warning", "critical"], ...] = ("warning", "critical")
    every_labels: int | None = Field(default=None, ge=100)
    method: Method = "incremental"
    window_labels: int = Field(default=3_000, ge=100)
    factory: str | None = None  # full and online: the challenger's factory (default: the champion's)
    params: dict[str, Any] = Field(default_factory=dict)  # and its hyperparameters
    candidates: tuple[CandidateSpec, ...] = ()  # full: an experiment on the window; the best becomes the challenger

    @model_validator(mode="after")
    def _factory_builds(self) -> Retrain:
        """A challenger that cannot be built fails when the policy is read, not at the first retraining."""
        if self.candidates:
            if self.method != "full" or self.factory is not None:
                raise ValueError("retrain.candidates is a full retraining's experiment, instead of retrain.factory")
            try:
                expand(self.candidates)
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
            return self
        if self.factory is None:
            if self.params:
                raise ValueError("retrain.params needs retrain.factory (the champion's own parameters stay)")
            return self
        if self.method == "incremental":
            raise ValueError("an incremental retraining continues the champion; retrain.factory applies to full "
                             "and online")
        try:
            build_model(self.factory, encode_params(self.params))
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return self


class Promotion(_Strict):
    min_labels: int = Field(default=3_000, ge=30)  # no step up on fewer paired labels (see docs/automation.md)
    false_promotion: float = Field(default=0.05, gt=0, lt=0.5)
    min_gain: float = Field(default=0.005, ge=0)  # loss the challenger must be proven to save per event
    canary_steps: tuple[float, ...] = (20.0, 50.0)
    step_labels: int = Field(default=200, ge=30)


class Rollback(_Strict):
    false_rollback: float = Field(default=0.01, gt=0, lt=0.5)
    min_loss: float = Field(default=0.005, ge=0)  # loss the canary must be proven to add per event to be rolled back
    min_labels: int = Field(default=1_000, ge=30)  # no rollback (nor retirement) on fewer paired labels


class Limits(_Strict):
    max_canary_percent: float = Field(default=50.0, gt=0, lt=100)
    cooldown_labels: int = Field(default=2_000, ge=0)
    give_up_labels: int = Field(default=20_000, ge=100)
    label_outage_events: int = Field(default=5_000, ge=1)  # served events without a label: labels stopped
    max_refused_labels: float = Field(default=0.05, gt=0, lt=1)  # of the last 1,000 labels: above, a quality hold
    max_refused_events: float = Field(default=0.05, gt=0, lt=1)  # of the last 1,000 events, dead-lettered: the same


class Business(_Strict):
    """What each outcome of a positive-class prediction is worth (a cost is negative), for the report's business
    view: money gained against no model and against the previous champion."""

    true_positive: float
    false_positive: float
    false_negative: float
    true_negative: float = 0.0
    currency: str = ""

    def value(self, tp: int, fp: int, fn: int, tn: int) -> float:
        return (tp * self.true_positive + fp * self.false_positive + fn * self.false_negative
                + tn * self.true_negative)

    def without_a_model(self, tp: int, fp: int, fn: int, tn: int) -> float:
        """The same events with nobody flagged: every positive missed, every negative left alone."""
        return (tp + fn) * self.false_negative + (fp + tn) * self.true_negative


class Policy(_Strict):
    model: str
    version: int = Field(default=1, ge=1)
    mode: Literal["automatic", "propose"] = "automatic"
    retrain: Retrain = Field(default_factory=Retrain)
    promotion: Promotion = Field(default_factory=Promotion)
    rollback: Rollback = Field(default_factory=Rollback)
    limits: Limits = Field(default_factory=Limits)
    business: Business | None = None  # the report's business view

    @model_validator(mode="after")
    def _steps_within_limits(self) -> Policy:
        steps = self.promotion.canary_steps
        if not steps or list(steps) != sorted(steps) or not all(0 < s < 100 for s in steps):
            raise ValueError("promotion.canary_steps must rise, each between 0 and 100 percent")
        if steps[-1] > self.limits.max_canary_percent:
            raise ValueError(f"the last canary step ({steps[-1]:g}%) is above limits.max_canary_percent "
                             f"({self.limits.max_canary_percent:g}%)")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def parse_policy(text: str, origin: str = "policy") -> Policy:
    """A policy from YAML, or a ConfigError naming every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{origin} must be a YAML mapping with at least `model:`")
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        raise invalid(origin, exc) from exc


def load_policy(path: Path) -> Policy:
    if not path.exists():
        raise ConfigError(f"no policy file at {path}")
    return parse_policy(path.read_text(), str(path))
