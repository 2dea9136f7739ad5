"""Measuring the ranker and trying it out, for the admin commands (`digest eval`, `digest rank`).

data: the labelled eval sets and the metrics; static: each ranker on every topic at once, seeded
profiles; feedback: one round of simulated readers; month: a month of digests, each judged;
reference: the reference methods computed on the set; listings and tryout: ranking a listings file.
Only the shells use this room (the CLI); nothing below it imports it.
"""
