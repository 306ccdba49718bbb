"""The ``openelis`` seeder: OpenELIS Global 2 in PostgreSQL (docs/seeders/openelis.md).

    locate.py  Find an OpenELIS canary that was planted but never recorded in the registry
    rows.py    The rows of one OpenELIS patient, as the patient form's save writes them
    seeder.py  The OpenELIS seeder: canary patients written straight into an OpenELIS Global database
    setup.py   The OpenELIS metadata a canary patient refers to, read once at ``open()``

Nothing is imported here: import the module you need.
"""
