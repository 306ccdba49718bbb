"""The ``openmrs`` seeder: OpenMRS 2.x in MySQL/MariaDB (docs/seeders/openmrs.md).

    checkdigits.py  OpenMRS patient identifier validators, re-implemented bit for bit
    clock.py        Creation times as OpenMRS stamps them: the server's clock, one stamp per row
    footprint.py    A canary's first clinical footprint as the site records one: visit, vitals encounter, obs
    locate.py       Find an OpenMRS canary that was planted but never recorded in the registry
    numbers.py      Patient identifiers for OpenMRS canaries, numbered the way the host numbers them
    rest.py         The OpenMRS REST calls the seeder makes: re-index one row, search patients, check the login
    rows.py         The rows of one OpenMRS patient, as the application's save writes them
    searchindex.py  Make OpenMRS's own patient search return a canary written in SQL, and check it does
    seeder.py       The OpenMRS seeder: canary patients written straight into an OpenMRS database
    setup.py        The OpenMRS metadata a canary patient refers to, read once at ``open()``
    version.py      The OpenMRS platform version of a database, read from its schema

Nothing is imported here: import the module you need.
"""
