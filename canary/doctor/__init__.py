"""`canary doctor`: the whole installation checked, one line per finding (docs/doctor.md).

    checks.py   `canary doctor`: the whole installation checked, one line per finding
    hardening.py  `canary doctor`'s checks of secret files (closed to other users) and the descriptor limit
    install.py  `canary doctor`'s checks of the installation itself: configuration, registry, sources, verify, audit
    network.py  `canary doctor`'s network checks: the listener's front ends and the alert sinks
    run.py      Running `canary doctor`: every probe in GROUPS order, each under its deadline, secrets scrubbed

Nothing is imported here: import the module you need.
"""
