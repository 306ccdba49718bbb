"""The ``openemr`` seeder: OpenEMR in MySQL/MariaDB (docs/seeders/openemr.md).

    auditlog.py   The audit log rows (and their checksums) OpenEMR writes when it creates a patient
    clinic.py     What happens to this site's new patients on the day they register (read only)
    footprint.py  The registration day's encounter, vitals, issues and follow-up, as OpenEMR writes them
    host.py       What one OpenEMR site does, read once when the seeder opens
    insurance.py  The blank insurance_data rows of the new-patient form
    later.py      A later visit of a planted canary, for canary drip (add_event)
    located.py    The rows of a canary whose placement was lost, found again in planting order
    rows.py       The rows OpenEMR writes for a new patient, in its own order
    seeder.py     The OpenEMR seeder: patients written the way OpenEMR's own screens write them
    setup.py      The site's version, globals and DEM layout
    values.py     Values OpenEMR computes itself when it creates a patient, computed the same way

Nothing is imported here: import the module you need.
"""
