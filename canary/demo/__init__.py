"""`canary demo`: the whole loop on embedded defaults, the attacker played on loopback.

    attack.py  What the holder of a leaked file does with it, played against a listener on loopback
    inbox.py   The security team's mailbox in ``canary demo``: a local SMTP server that keeps what it gets
    run.py     `canary demo`: the whole loop on embedded defaults, in one folder

Nothing is imported here: import the module you need.
"""
