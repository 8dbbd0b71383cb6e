"""Stripe: the SDK behind one gateway, and the path every event takes from the HTTP body to the audit row.

POST /api/v1/webhooks/stripe          payment/api/webhooks.py   the thin endpoint (past the page middleware):
    |                                                           the size-limited body, problem+json errors
inbox.verify                          payment/stripe/inbox.py   signature over the raw body, within 5 minutes
    |                                 (signature.py: HMAC-SHA256, the SDK's rules, several secrets)
batching.DeliveryBatcher              payment/stripe/batching.py   concurrent deliveries share one statement
inbox.store_and_defer_many                                      the event rows once (unique Stripe id) and the
    |                                                           jobs that apply them, in one statement and commit
[procrastinate_jobs]  (also: stripe_events.sweep re-enqueues stored events left without a job;
    |                  stripe_events.catch_up stores what Stripe's events API has and we lack)
stripe_events.apply_stripe_event      payment/jobs/stripe_events.py   the job body: one transaction, the
    |                                                           failure recorded (`failed` once no retry is left)
events.apply                          payment/stripe/events.py  row lock, per-customer advisory lock
    |
handlers.HANDLERS[type]               payment/stripe/handlers.py   event type -> one domain call
    |
<domain>.stripe_sync.upsert_from_stripe   subscriptions/, invoices/, refunds/: re-read the object through the
    |                                 gateway (gateway.py, the only SDK importer), map it with reader.py
audit.record                          the audit row of the change, in the same transaction as the change
"""
