"""Hits: a network event that used one of our contact points, classified and handed to alerting.

    classify.py    Classifying a hit: who or what most likely used the contact point
    hit.py         Hits: a network event that used one of our contact points
    journal.py     The hit journal: every hit is on disk before it is stored, and stored exactly once
    sink.py        RegistryHitSink: the HitSink the listener's front ends call (see canary/hits/hit.py)
    tokenindex.py  TokenIndex: which values are canary tokens, in memory, for the listener's hot paths

Nothing is imported here: import the module you need.
"""
