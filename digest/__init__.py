"""Trending-papers digest: ingest listings, rank them per subscriber, render and send one email each."""

__version__ = "0.1.0"
