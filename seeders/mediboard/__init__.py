"""The ``mediboard`` seeder: Mediboard / OX dPpatients in MySQL (docs/seeders/mediboard.md).

    host.py      What one Mediboard site does, read once when the seeder opens
    rows.py      The rows Mediboard writes for a new patient, in its own order
    seeder.py    The Mediboard seeder: patients written the way Mediboard (OpenXtrem) stores them
    soundex2.py  French Soundex2, exactly as Mediboard computes it for its patient search columns

Nothing is imported here: import the module you need.
"""
