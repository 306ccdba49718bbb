"""The ``mediboard`` seeder: Mediboard / OX dPpatients in MySQL (docs/seeders/mediboard.md).

    footprint.py  A clinical footprint after registration: a consultation with vital signs by a practitioner
    host.py       What one Mediboard site does, read once when the seeder opens
    journal.py    The history entries Mediboard writes for each object it stores: user_log or user_action
    locate.py     A planted patient's rows read back from the database, in the order the seeder inserted them
    rows.py       The rows Mediboard writes for a new patient, in its own order
    seeder.py     The Mediboard seeder: patients written the way Mediboard (OpenXtrem) stores them
    soundex2.py   French Soundex2, exactly as Mediboard computes it for its patient search columns
    version.py    Which Mediboard this is: the dPpatients version in modules and what its schema holds
    vigilance.py  Names as Mediboard's identity vigilance stores them, and the patient signature

Nothing is imported here: import the module you need.
"""
