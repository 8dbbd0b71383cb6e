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
stripe_events.apply_stripe_event      payment/jobs/stripe_events.py   the job body: first, with no transaction
    |                                                           open, a fetch ticket and the handler's Stripe
    |                                                           reads (handlers.prefetch on a recording gateway);
    |                                                           then one short transaction replaying them; the
    |                                                           failure recorded (`failed` once no retry is left)
events.apply_with                     payment/stripe/events.py  row lock, the other pending events of the same
    |                                                           object (served by the same snapshot), per-customer
    |                                                           advisory lock
handlers.HANDLERS[type]               payment/stripe/handlers.py   event type -> one domain call, and its reads
    |
<domain>.stripe_sync.upsert_from_stripe   subscriptions/, invoices/, refunds/: read the object through the
    |                                 gateway (gateway.py, the only SDK importer; here a replaying view: a read
    |                                 not prefetched ends the transaction, is made, and the apply runs again),
    |                                 skip a snapshot older than the stored one (sync.older_than_stored), map it
    |                                 with reader.py
audit.record                          the audit row of each event, in the same transaction as the change
"""
