"""Webhooks: when a job or a batch ends, its event is POSTed, signed per the Standard Webhooks spec.

The event (a fixed payload and a message id) is written in the transaction that ends the job, so no end goes
untold; after the commit a Celery task sends it (workers.tasks.deliver_webhook). Each attempt is recorded; a
failed one is tried again with exponential backoff until `webhook_retry_for_s` has passed, then given up. A
task lost with a worker is found by the workers' sweep (its delivery's next attempt long past) and sent
again; an attempt claims its delivery first, so a duplicate task never sends it twice at once.
"""

import contextlib
import ipaddress
import json
import logging
import socket
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import event, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from docproc.db import session_scope
from docproc.errors import ServiceError, shorten
from docproc.models import (
    WEBHOOK_URL_MAX,
    Batch,
    Job,
    WebhookAttempt,
    WebhookDelivery,
    WebhookStatus,
    utcnow,
)
from docproc.settings import get_settings

log = logging.getLogger(__name__)

# Deliveries added in a session, sent once it commits (session.info key).
_NEW_DELIVERIES = "docproc.webhooks.new"
# A recorded error is cut to this many characters.
ERROR_CHARS = 500


def resolve_url(requested: str | None) -> str | None:
    """The URL a new job or batch tells of its end: the request's (checked), else the deployment's default."""
    if requested is None:
        return get_settings().webhook_url
    return check_url(requested)


def check_url(url: str) -> str:
    """A client's webhook URL if it may be used: http(s), resolving to public addresses only (unless
    DOCPROC_WEBHOOK_ALLOW_PRIVATE), with webhooks configured; 422 with a code otherwise."""
    settings = get_settings()
    if not settings.webhook_secret:
        raise ServiceError(
            422, "webhooks_not_configured", "Webhooks are off on this server (no DOCPROC_WEBHOOK_SECRET)."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > WEBHOOK_URL_MAX:
        message = (
            f"webhook_url {shorten(url)} must be an http(s) URL of at most {WEBHOOK_URL_MAX} characters."
        )
        raise ServiceError(422, "invalid_webhook_url", message)
    if not settings.webhook_allow_private:
        _check_public(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    return url


def _check_public(host: str, port: int) -> None:
    """Refuse a host that resolves to a private, loopback, link-local or otherwise non-public address."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError) as exc:
        message = f"The webhook host {shorten(host)} does not resolve."
        raise ServiceError(422, "invalid_webhook_url", message) from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            message = f"The webhook host {shorten(host)} is a private, loopback or link-local address."
            raise ServiceError(422, "webhook_url_not_allowed", message)


def job_ended(session: Session, job: Job) -> None:
    """Record the job's end event, if it has a webhook (call in the transaction that ends it)."""
    if job.webhook_url is None:
        return
    from docproc.api.schemas import JobOut

    data = JobOut.model_validate(job).model_dump(mode="json", exclude={"webhook"})
    _add(session, WebhookDelivery(job_id=job.id, url=job.webhook_url), f"job.{job.status.value}", data)


def job_and_batch_ended(session: Session, job: Job) -> None:
    """Record the job's end event, and its batch's if it was the batch's last item."""
    job_ended(session, job)
    if job.batch_id is not None:
        batch_may_have_ended(session, job.batch_id)


def batch_may_have_ended(session: Session, batch_id: str) -> None:
    """Record the batch's end event if it has a webhook and every item has now ended."""
    # Imported here: docproc.batches builds on docproc.service, which records job ends through this module.
    from docproc import batches
    from docproc.api.schemas import BatchOut

    # Locked, so that of two last items ending at once the second sees the first ended (locks are always
    # taken job first, then batch).
    batch = session.scalar(select(Batch).where(Batch.id == batch_id).with_for_update())
    if batch is None or batch.webhook_url is None:
        return
    session.flush()
    state = batches.states(session, [batch])[batch_id]
    if state.status not in batches.FINISHED_STATUSES:
        return
    data = BatchOut.of(batch, state).model_dump(mode="json", exclude={"webhook"})
    delivery = WebhookDelivery(batch_id=batch_id, url=batch.webhook_url)
    with contextlib.suppress(IntegrityError), session.begin_nested():  # its event was recorded already
        _add(session, delivery, f"batch.{state.status}", data)


def _add(session: Session, delivery: WebhookDelivery, event_type: str, data: dict[str, Any]) -> None:
    delivery.payload = json.dumps({"type": event_type, "timestamp": utcnow().isoformat(), "data": data})
    session.add(delivery)
    session.flush()
    session.info.setdefault(_NEW_DELIVERIES, []).append(delivery.id)


@event.listens_for(Session, "after_commit")
def _send_new_deliveries(session: Session) -> None:
    delivery_ids = session.info.pop(_NEW_DELIVERIES, [])
    if not delivery_ids:
        return
    from workers.celery_app import enqueue_webhook  # only processes that end jobs get here

    for delivery_id in delivery_ids:
        try:
            enqueue_webhook(delivery_id)
        except Exception:  # the broker is away: the sweep sends it once it is back
            log.exception("webhook %s could not be queued; the sweep will send it", delivery_id)


@event.listens_for(Session, "after_rollback")
def _forget_new_deliveries(session: Session) -> None:
    session.info.pop(_NEW_DELIVERIES, None)


def attempt(delivery_id: str) -> float | None:
    """POST the delivery once if it is due and nobody else is sending it; record the attempt.

    Returns the seconds until the next attempt, or None when there is none to schedule (delivered, given up,
    not due, or being sent elsewhere).
    """
    settings = get_settings()
    now = utcnow()
    with session_scope() as session:
        claimed = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == WebhookStatus.pending,
                # A task may fire a moment early; a duplicate sent far too early finds nothing to do.
                WebhookDelivery.next_attempt_at <= now + timedelta(seconds=1),
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            )
            .values(
                attempts=WebhookDelivery.attempts + 1,
                claimed_until=now + timedelta(seconds=2 * settings.webhook_timeout_s + 30),
            )
            .returning(WebhookDelivery.attempts, WebhookDelivery.url, WebhookDelivery.payload)
        ).one_or_none()
    if claimed is None:
        return None
    number, url, payload = claimed
    status_code, error, permanent = _post(delivery_id, url, payload)
    finished = utcnow()
    with session_scope() as session:
        session.add(
            WebhookAttempt(
                delivery_id=delivery_id,
                number=number,
                started_at=now,
                duration_ms=int((finished - now).total_seconds() * 1000),
                status_code=status_code,
                error=error,
            )
        )
        delivery = session.get_one(WebhookDelivery, delivery_id)
        delivery.claimed_until = None
        delivery.last_error = error
        delay = min(settings.webhook_backoff_s * 2 ** (number - 1), settings.webhook_backoff_max_s)
        deadline = delivery.created_at + timedelta(seconds=settings.webhook_retry_for_s)
        if error is None or permanent or finished + timedelta(seconds=delay) > deadline:
            delivery.status = WebhookStatus.delivered if error is None else WebhookStatus.failed
            delivery.finished_at = finished
            return None
        delivery.next_attempt_at = finished + timedelta(seconds=delay)
        return delay


def _post(delivery_id: str, url: str, payload: str) -> tuple[int | None, str | None, bool]:
    """One signed POST: (the answer's status, the error or None, whether retrying is pointless)."""
    settings = get_settings()
    if not settings.webhook_secret:
        return None, "Webhooks are off on this server (no DOCPROC_WEBHOOK_SECRET).", True
    try:
        if url != settings.webhook_url:  # a client's URL: its host may resolve elsewhere by now
            check_url(url)
    except ServiceError as exc:
        return None, exc.message, True
    sent_at = utcnow()
    headers = {
        "content-type": "application/json",
        "user-agent": "docproc-webhooks",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(settings.webhook_secret).sign(delivery_id, sent_at, payload),
    }
    started = time.monotonic()
    try:
        response = httpx.post(
            url, content=payload.encode(), headers=headers, timeout=settings.webhook_timeout_s
        )
    except httpx.HTTPError as exc:
        log.info("webhook %s: %s after %.1fs", delivery_id, type(exc).__name__, time.monotonic() - started)
        return None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS], False
    if response.is_success:
        return response.status_code, None, False
    return response.status_code, f"HTTP {response.status_code}", False


def take_overdue(grace_s: float) -> list[str]:
    """Pending deliveries whose next attempt is more than grace_s past and that nobody is sending: their task
    was lost (a worker died holding it, or the broker was away). Marked due now, so that of several sweepers
    only one re-sends each."""
    now = utcnow()
    with session_scope() as session:
        return list(
            session.scalars(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.status == WebhookStatus.pending,
                    WebhookDelivery.next_attempt_at < now - timedelta(seconds=grace_s),
                    or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
                )
                .values(next_attempt_at=now)
                .returning(WebhookDelivery.id)
            )
        )
