"""Every Prometheus metric dmgate exports, defined in one table.

Labels stay low-cardinality: route, platform, policy, action, mode, outcome — never ids
or text. Metrics live in a per-application registry so several instances can run in one
process (tests).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_REVIEW_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 259200)
_EVAL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


@dataclass
class Metrics:
    registry: CollectorRegistry
    dm_decisions: Counter
    policy_matches: Counter
    holds_pending: Gauge
    holds_resolved: Counter
    hold_review_seconds: Histogram
    requests: Counter
    upstream_duration: Histogram
    policy_evaluation: Histogram
    review_notifications: Counter
    policy_reloads: Counter
    store_failures: Counter
    oldest_pending_hold_age: Gauge
    upstream_errors: Counter
    retention_pruned: Counter
    proxy_connects: Counter
    sender_identity: Counter
    account_header_mismatches: Counter
    refused_requests: Counter


CONNECT_OUTCOMES = (
    "intercepted",
    "tunnelled",
    "refused",
    "auth_required",
    "tls_failed",
    "unavailable",
    "upstream_failed",
)


def create_metrics() -> Metrics:
    r = CollectorRegistry(auto_describe=True)
    metrics = Metrics(
        registry=r,
        dm_decisions=Counter(
            "dmgate_dm_decisions",
            "DMs judged, by the action taken and the mode it was "
            "taken in (shadow = the policies only observed).",
            ["platform", "action", "mode"],
            registry=r,
        ),
        policy_matches=Counter(
            "dmgate_policy_matches",
            "Policy matches, by policy, action and mode.",
            ["policy", "action", "mode"],
            registry=r,
        ),
        holds_pending=Gauge(
            "dmgate_holds_pending",
            "Holds waiting for a reviewer.",
            registry=r,
            # From the store, the same in every worker: the latest, never a sum.
            multiprocess_mode="mostrecent",
        ),
        holds_resolved=Counter(
            "dmgate_holds_resolved",
            "Holds that reached a final state, by outcome.",
            ["outcome"],
            registry=r,
        ),
        hold_review_seconds=Histogram(
            "dmgate_hold_review_seconds",
            "Time from hold to a reviewer's decision.",
            buckets=_REVIEW_BUCKETS,
            registry=r,
        ),
        requests=Counter(
            "dmgate_requests",
            "Requests through the proxy, by route and kind (dm, signal, passthrough).",
            ["route", "kind"],
            registry=r,
        ),
        upstream_duration=Histogram(
            "dmgate_upstream_request_duration_seconds",
            "Time until the upstream's response headers arrived.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ),
        policy_evaluation=Histogram(
            "dmgate_policy_evaluation_duration_seconds",
            "Time to evaluate every enabled policy for one DM, store lookups included.",
            buckets=_EVAL_BUCKETS,
            registry=r,
        ),
        review_notifications=Counter(
            "dmgate_review_notifications",
            "Review-endpoint notification attempts, by result.",
            ["result"],
            registry=r,
        ),
        policy_reloads=Counter(
            "dmgate_policy_reloads",
            "Policy file reloads, by result.",
            ["result"],
            registry=r,
        ),
        store_failures=Counter(
            "dmgate_store_failures",
            "DMs refused (503) because the store was unreachable.",
            registry=r,
        ),
        oldest_pending_hold_age=Gauge(
            "dmgate_oldest_pending_hold_age_seconds",
            "Age of the oldest hold waiting for a reviewer (0 when none), as of the last "
            "expiry sweep.",
            registry=r,
            multiprocess_mode="mostrecent",
        ),
        upstream_errors=Counter(
            "dmgate_upstream_errors",
            "Upstream requests that failed, by route and reason "
            "(timeout, unreachable, status_5xx).",
            ["route", "reason"],
            registry=r,
        ),
        retention_pruned=Counter(
            "dmgate_retention_pruned",
            "Rows pruned because they are older than every policy window plus the margin.",
            ["kind"],
            registry=r,
        ),
        proxy_connects=Counter(
            "dmgate_proxy_connects",
            "Forward-mode CONNECT requests by outcome: intercepted, tunnelled, refused, "
            "auth_required, tls_failed (the client rejected dmgate's certificate: is the CA "
            "trusted?), unavailable, upstream_failed.",
            ["outcome"],
            registry=r,
        ),
        sender_identity=Counter(
            "dmgate_sender_identity",
            "DMs by how their sending account was established: request (the request proves "
            "it: OAuth 1.0a token, JWT, page id), learnt (an earlier `me` answer for the "
            "credential), lookup (dmgate asked the platform), unverified (held: fail closed).",
            ["platform", "source"],
            registry=r,
        ),
        account_header_mismatches=Counter(
            "dmgate_account_header_mismatches",
            "DMs whose DMGate-Account header named another account than the verified one "
            "(judged as the verified account).",
            ["platform"],
            registry=r,
        ),
        refused_requests=Counter(
            "dmgate_refused_requests",
            "Requests refused before reaching the upstream because dmgate could not judge "
            "them safely, by reason (method_override, dm_path_method, connection_header, "
            "bad_dm, body_timeout).",
            ["route", "reason"],
            registry=r,
        ),
    )
    # Export every known label value from the start (at 0): a series that first appears
    # already at 1 is invisible to increase() and rate(), and so to the alerts.
    for result in ("success", "failure"):
        metrics.policy_reloads.labels(result)
    for result in ("delivered", "failed", "abandoned"):
        metrics.review_notifications.labels(result)
    for outcome in ("sent", "send_failed", "rejected", "expired"):
        metrics.holds_resolved.labels(outcome)
    for outcome in CONNECT_OUTCOMES:
        metrics.proxy_connects.labels(outcome)
    return metrics
