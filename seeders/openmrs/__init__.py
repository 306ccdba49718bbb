"""The ``openmrs`` seeder: OpenMRS 2.x in MySQL/MariaDB (docs/seeders/openmrs.md).

    checkdigits.py  OpenMRS patient identifier validators, re-implemented bit for bit
    locate.py       Find an OpenMRS canary that was planted but never recorded in the registry
    numbers.py      Patient identifiers for OpenMRS canaries, numbered the way the host numbers them
    rows.py         The rows of one OpenMRS patient, as the application's save writes them
    seeder.py       The OpenMRS seeder: canary patients written straight into an OpenMRS database
    setup.py        The OpenMRS metadata a canary patient refers to, read once at ``open()``

Nothing is imported here: import the module you need.
"""
