"""Prometheus metrics of one LinkRay process (prometheus-client; exposed at /metrics by
linkray_site.observability).

Hot-path cost is kept to a plain-int increment: frames are counted in the journal buffer's
dict (`FrameCounts`), which is read only when Prometheus scrapes. Everything that is a level
(chargers connected, CSMS leg states, replay backlog, meter age) is computed at scrape time by
the collector in observability.py, never kept up to date per frame.

Django-free: imported by gateway.session and gateway.journal.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Charger CALL forwarded to the CSMS -> its answer back at LinkRay: what a charger waits for
# through LinkRay (the CSMS's own time included).
RELAY_ROUND_TRIP = Histogram(
    "linkray_relay_round_trip_seconds",
    "Seconds from a charger CALL being forwarded to the CSMS to the CSMS's answer reaching LinkRay",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)

# Seconds the site's measured current spent above its limit: the balancing loop calls
# record_over_limit(seconds) once per cycle when the grid meter reads above the site limit.
OVER_LIMIT = Counter(
    "linkray_site_over_limit_seconds",
    "Seconds the grid connection was measured above the site limit (balancing loop)",
    registry=REGISTRY,
)

CSMS_RECONNECT_FAILURES = Counter(
    "linkray_csms_reconnect_failures",
    "Failed reconnection attempts of CSMS legs, by outcome",
    ["outcome"],
    registry=REGISTRY,
)

# OCPP 1.6 action names (plus Security extension): anything else a charger sends is counted as
# "other", so a hostile charger cannot grow the label set.
OCPP16_ACTIONS = frozenset(
    """Authorize BootNotification DataTransfer DiagnosticsStatusNotification FirmwareStatusNotification
    Heartbeat MeterValues StartTransaction StatusNotification StopTransaction CancelReservation
    ChangeAvailability ChangeConfiguration ClearCache ClearChargingProfile GetCompositeSchedule
    GetConfiguration GetDiagnostics GetLocalListVersion RemoteStartTransaction RemoteStopTransaction
    ReserveNow Reset SendLocalList SetChargingProfile TriggerMessage UnlockConnector UpdateFirmware
    CertificateSigned DeleteCertificate ExtendedTriggerMessage GetInstalledCertificateIds GetLog
    InstallCertificate LogStatusNotification SecurityEventNotification SignCertificate
    SignedFirmwareStatusNotification SignedUpdateFirmware""".split()
)


class FrameCounts:
    """Frames seen per (direction, message type, action): a plain dict of ints, cheap to bump
    on every frame, turned into a Prometheus counter at scrape time."""

    __slots__ = ("counts",)

    def __init__(self):
        self.counts: dict[tuple[str, object, object], int] = {}

    def count(self, direction: str, message_type, action) -> None:
        key = (direction, message_type, action)
        counts = self.counts
        try:
            counts[key] += 1
        except KeyError:
            if action is not None and action not in OCPP16_ACTIONS:
                key = (direction, message_type, "other")
            if message_type not in (2, 3, 4):
                key = (direction, None, key[2])
            counts[key] = counts.get(key, 0) + 1


MESSAGE_TYPE_NAMES = {2: "call", 3: "callresult", 4: "callerror", None: "unparsed"}


def record_over_limit(seconds: float) -> None:
    """For the balancing loop: the site was over its limit for `seconds` of the last cycle."""
    if seconds > 0:
        OVER_LIMIT.inc(seconds)


class OverLimitTally:
    """Turns "over the limit now?" checks into seconds over the limit: the time between two
    checks counts when both saw the site over its limit (the balancing loop checks every cycle
    and every new grid reading)."""

    __slots__ = ("_over_since_s",)

    def __init__(self):
        self._over_since_s: float | None = None

    def observe(self, over: bool, now_s: float) -> float:
        """Seconds added to linkray_site_over_limit_seconds by this check."""
        added = 0.0
        if over and self._over_since_s is not None and now_s > self._over_since_s:
            added = now_s - self._over_since_s
            record_over_limit(added)
        self._over_since_s = now_s if over else None
        return added


def register_process_collectors() -> None:
    """RSS, CPU seconds and open files of this process (what the fuzzer's RSS check reads)."""
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    ProcessCollector(registry=REGISTRY)
    PlatformCollector(registry=REGISTRY)
    GCCollector(registry=REGISTRY)


register_process_collectors()
