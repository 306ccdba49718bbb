"""The ``openemr`` seeder: OpenEMR in MySQL/MariaDB (docs/seeders/openemr.md).

    host.py    What one OpenEMR site does, read once when the seeder opens
    rows.py    The rows OpenEMR writes for a new patient, in its own order
    seeder.py  The OpenEMR seeder: patients written the way OpenEMR's own screens write them
    values.py  Values OpenEMR computes itself when it creates a patient, computed the same way

Nothing is imported here: import the module you need.
"""
