"""What an attacker holding a dump could notice about our canaries (`canary audit`, docs/audit.md).

    phones.py  Phone checks of `canary audit`: what a number lookup tells an attacker
    report.py  `canary audit`: what an attacker holding a dump could notice about our canaries
    rules.py   The checks an attacker would run on a dump, as pure functions over canary data

Nothing is imported here: import the module you need.
"""
