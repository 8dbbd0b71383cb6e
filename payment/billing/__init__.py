"""What an end user has and buys: customers from the client API, entitlements, plans on offer, checkout."""
