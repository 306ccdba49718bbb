"""What an attacker holding a dump could notice about our canaries (`canary audit`, docs/audit.md).

    features.py      Per-patient features an attacker computes from a dump (separability audit)
    phones.py        Phone checks of `canary audit`: what a number lookup tells an attacker
    report.py        `canary audit`: what an attacker holding a dump could notice about our canaries
    rules.py         The checks an attacker would run on a dump, as pure functions over canary data
    separability.py  `canary audit SOURCE --separability`: cross-validated classifiers, AUC, giveaways
    settings.py      Settings of `canary audit` (declared apart: loading a config imports no numpy)
    site.py          Reading a source's patients through its seeder for the separability audit

Nothing is imported here: import the module you need.
"""
