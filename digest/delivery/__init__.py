"""Delivery: the ledger (the only writer of deliveries), the sender, bounce policy."""
