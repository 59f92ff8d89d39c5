"""From detections to incidents: one alert per real change and kind, for the people on call.

A change rarely moves one thing once. An abrupt shift in prices moves three
features within a thousand events; a gradual one opens an episode, which
resolves when its reference is re-based, and opens again; a model's drop
resolves between two bad stretches. Each is right as a detection and wrong
as a page. So the detectors' transitions pass through incidents, one per
kind for data drift (its features are the incident's members) and one per
kind and subject for prediction drift and performance drops (concept drift's
episodes already end only after 2,000 quiet labels):

* the first FIRING with no open incident opens one, and goes out, with an
  ``incident`` id;
* a FIRING while the incident is open joins it (a member more, or the same
  one again) and does not go out; it is logged, and the per-feature episode
  gauges still show it;
* a RESOLVED of a member closes that member; the incident resolves (one
  RESOLVED alert, with every member it had) once all its members closed and
  ``HOLD_EVENTS`` more events passed without one opening again;
* a new member joins only within ``JOIN_EVENTS`` of the incident's opening
  (a member firing again always joins): a feature that moves later is a new
  change, paged as a new incident, so a lingering incident (or a false one)
  cannot swallow the next drift.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from weir.clock import now_ms
from weir.contract.records import Alert

log = logging.getLogger("weir.monitor")

HOLD_EVENTS = 3_000  # events an incident waits, all members closed, before it resolves
JOIN_EVENTS = 3_000  # events after its opening during which an incident takes new members
# Concept drift groups itself (an episode ends after 2,000 quiet labels); held longer, a false detection just
# before a real change would swallow the real one.
GROUPED = frozenset({"data_drift", "prediction_drift", "performance_drop"})


@dataclass
class Incident:
    incident_id: str
    opened_by: Alert
    opened_at: int
    open_members: set[str] = field(default_factory=set)
    members: list[str] = field(default_factory=list)
    last_closed_at: int = 0
    last_resolution: Alert | None = None  # the detector's RESOLVED of the member that closed last
    folded: int = 0  # FIRING detections that joined it instead of going out


class Incidents:
    """The open incidents, and what of the detectors' alerts goes out."""

    def __init__(self) -> None:
        self.open: dict[str, Incident] = {}
        self.renewed: dict[str, list[Incident]] = {}  # incidents closed to new members, until they resolve

    def admit(self, alerts: list[Alert], now: int) -> list[Alert]:
        """The alerts that go out of ``alerts`` (in order), at event ``now``."""
        out = []
        for alert in alerts:
            if alert["kind"] not in GROUPED:
                out.append(alert)
                continue
            key = self._key(alert)
            if alert["status"] == "FIRING":
                out += self._firing(key, alert, now)
            else:
                self._resolved(key, alert, now)
        return out

    def due(self, now: int) -> list[Alert]:
        """The RESOLVED alerts of incidents whose members all closed ``HOLD_EVENTS`` ago."""
        out = []
        for key, incidents in list(self.renewed.items()):
            still = []
            for incident in incidents:
                if not incident.open_members and now - incident.last_closed_at >= HOLD_EVENTS:
                    out.append(self._resolution(incident))
                else:
                    still.append(incident)
            self.renewed[key] = still
        for key in list(self.open):
            incident = self.open[key]
            if not incident.open_members and now - incident.last_closed_at >= HOLD_EVENTS:
                out.append(self._resolution(self.open.pop(key)))
        return out

    def _firing(self, key: str, alert: Alert, now: int) -> list[Alert]:
        incident = self.open.get(key)
        if incident is not None and alert["subject"] not in incident.members and now - incident.opened_at >= \
                JOIN_EVENTS:  # a later change: a new incident; the old one resolves on its own
            self.renewed.setdefault(key, []).append(self.open.pop(key))
            incident = None
        if incident is None:
            incident = self.open[key] = Incident(str(uuid.uuid4()), alert, now)
            incident.open_members.add(alert["subject"])
            incident.members.append(alert["subject"])
            return [_with(alert, incident)]
        incident.open_members.add(alert["subject"])
        if alert["subject"] not in incident.members:
            incident.members.append(alert["subject"])
        incident.folded += 1
        log.info("%s on %s joins the open %s incident %s (opened by %s)", alert["kind"], alert["subject"],
                 alert["kind"], incident.incident_id, incident.opened_by["subject"])
        return []

    def _resolved(self, key: str, alert: Alert, now: int) -> None:
        for incident in [self.open.get(key), *self.renewed.get(key, [])]:
            if incident is not None and alert["subject"] in incident.open_members:
                incident.open_members.discard(alert["subject"])
                incident.last_closed_at, incident.last_resolution = now, alert

    def _resolution(self, incident: Incident) -> Alert:
        """The incident's RESOLVED: the detector's resolution of its last member (its statistic and threshold),
        under the subject that opened it, with every member and how many detections joined."""
        last = incident.last_resolution or incident.opened_by
        resolved: Alert = {**last, "alert_id": str(uuid.uuid4()), "subject": incident.opened_by["subject"],
                           "status": "RESOLVED", "detected_at": now_ms()}
        resolved["evidence"] = {**last["evidence"], "incident": incident.incident_id,
                                "members": ", ".join(incident.members), "detections_joined": str(incident.folded),
                                "hold_events": str(HOLD_EVENTS)}
        return resolved

    @staticmethod
    def _key(alert: Alert) -> str:
        return alert["kind"] if alert["kind"] == "data_drift" else f"{alert['kind']}:{alert['subject']}"


def _with(alert: Alert, incident: Incident) -> Alert:
    return {**alert, "evidence": {**alert["evidence"], "incident": incident.incident_id}}
