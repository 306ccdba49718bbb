"""The `canary` command: one click group (main.py), one module per command family, thin over the library.

    admin.py     `canary admin hash-password`: the password of the admin dashboard (docs/admin.md)
    audit.py     `canary audit [SOURCE] [--json]`: register with ``cli.add_command(audit)`` in canary/cli/main.py
    canaries.py  `canary generate|plant|list|show|verify|retire`: canaries from drawing to retiring
    doctor.py    `canary doctor`: registered with ``cli.add_command(doctor)`` in canary/cli/main.py
    drip.py      `canary drip run|list|cancel`, and `plant_over` behind `canary plant --over`
    listen.py    `canary listen|hits|alerts|zone`: the listener service and what it saw
    main.py      The `canary` command: one click group, thin over the library
    options.py   What the `canary` commands share: the group that turns errors into one line, the Env,
    render.py    Output of the CLI: text tables for people, JSON documents for scripts
    scan.py      `canary scan` and `canary hibp sync`
    setup.py     `canary init`: a commented canary.toml and an initialised registry
    sources.py   `canary source add|list|show|remove`: the target databases canaries are planted in
    zone.py      `canary zone`: the DNS records to publish at the registrar, in zone-file syntax

Nothing is imported here: import the module you need.
"""
