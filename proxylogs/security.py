"""The security score of the monitored proxy: the admin's SecurityProfile, checked against what the logs show.

Each control the profile claims earns its weight (the weights sum to 100). A claim the recent logs contradict
earns nothing and adds a recommendation saying what was seen:

- direct-IP blocking, yet requests or CONNECTs to raw IP addresses were allowed;
- HTTPS inspection, yet HTTPS went through as opaque CONNECT tunnels and no https:// request was logged.
"""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from proxylogs.models import ProxyLogEntry, SecurityProfile

EVIDENCE_DAYS = 7


@dataclass(frozen=True)
class Control:
    field: str
    label: str
    weight: int
    recommendation: str


CONTROLS = (
    Control("direct_ip_blocking", "Direct-IP blocking", 15,
            "Block requests to raw IP addresses; they bypass domain filtering."),
    Control("waf", "Web application firewall", 15, "Enable the WAF to stop injection and traversal attempts."),
    Control("default_password_changed", "Default password changed", 15,
            "Change the proxy's default administrator password."),
    Control("ip_blacklist", "IP blacklist", 10, "Maintain an IP blacklist of known-bad addresses."),
    Control("domain_blacklist", "Domain blacklist", 10, "Maintain a domain blacklist."),
    Control("content_filtering", "Content filtering", 10, "Enable content filtering (file types, categories)."),
    Control("https_inspection", "HTTPS inspection", 10, "Enable HTTPS filtering for full request inspection."),
    Control("rate_limiting", "Rate limiting", 10, "Enable rate limiting to contain abusive clients."),
    Control("time_restrictions", "Time restrictions", 5, "Restrict access outside working hours where it applies."),
)
MAX_SCORE = sum(control.weight for control in CONTROLS)
assert MAX_SCORE == 100


def _contradictions(profile, since):
    """{control field: recommendation} for claims that the entries since `since` contradict."""
    recent = ProxyLogEntry.objects.filter(timestamp__gte=since)
    found = {}
    allowed_raw_ip = recent.filter(destination_is_ip=True, blocked=False).exclude(http_status=407)
    raw = allowed_raw_ip.count() if profile.direct_ip_blocking else 0
    if raw:
        example = allowed_raw_ip.order_by("-timestamp", "-id").values_list("destination", flat=True).first()
        found["direct_ip_blocking"] = (
            f"Direct-IP blocking is enabled, but {raw} request(s) to raw IP addresses were allowed in the last "
            f"{EVIDENCE_DAYS} days (e.g. {example}); check the proxy's ACLs."
        )
    tunnels = recent.filter(method="CONNECT", result_code="TCP_TUNNEL").count() if profile.https_inspection else 0
    if tunnels and not recent.filter(Q(url__startswith="https://")).exists():
        found["https_inspection"] = (
            f"HTTPS inspection is enabled, but {tunnels} HTTPS connection(s) in the last {EVIDENCE_DAYS} days "
            "were opaque CONNECT tunnels and no HTTPS request was inspected; check ssl_bump."
        )
    return found


def security_score(*, now=None):
    """{"score", "max_score", "recommendations", "controls"} for /api/security/score."""
    profile = SecurityProfile.current()
    since = (now or timezone.now()) - dt.timedelta(days=EVIDENCE_DAYS)
    contradicted = _contradictions(profile, since)
    score, recommendations, controls = 0, [], []
    for control in CONTROLS:
        claimed = bool(getattr(profile, control.field))
        effective = claimed and control.field not in contradicted
        if effective:
            score += control.weight
        elif claimed:
            recommendations.append(contradicted[control.field])
        else:
            recommendations.append(control.recommendation)
        controls.append({"name": control.field, "label": control.label, "weight": control.weight,
                         "enabled": claimed, "effective": effective})
    return {"score": score, "max_score": MAX_SCORE, "recommendations": recommendations, "controls": controls}
