"""Subscriptions: subscribers, sign-up, tokens, links, unsubscribes."""
