"""Shared SQL machinery (target reflection, mappings, neighbour blending) and the generic ``sql`` seeder.

    access.py          May the account of a SQL source do what plant, verify and retire do? Found without writing
    appseeder.py       The lifecycle the SQL seeders share, around the one ``SqlTarget`` they hold
    appsql.py          What every seeder written for one application's SQL database shares
    apptarget.py       ``SqlTarget`` for application seeders, which know their tables in advance
    blend.py           How a host table writes its rows, learnt from its most recent ones
    columns.py         One mapped column: where its value comes from and how it is written
    fields.py          The identity fields a mapping may name, and how to read them
    identity_match.py  How an identity's name and NIR may already be written in a host database
    idnumbers.py       The next number of a hand-kept or sequential identifier series
    located.py         Placement rows for rows found in the database (``locate``), not just inserted
    mapping.py         Mapping files of the generic SQL seeder: TOML -> ``Mapping`` -> rows per identity
    neighbours.py      How the host's own recent rows are written, so a canary row looks like them
    rows.py            Rows to insert for one patient, before the database fills in the blanks
    seeder.py          The generic SQL seeder: plant patients into any tables described by a mapping file
    siteread.py        What a SQL site looks like, read only: patients for the audit, admissions, postcodes
    target.py          One target SQL database, as every SQL-backed seeder needs it
    values.py          Python values versus reflected SQL columns: fit, coerce, serialise, compare

Nothing is imported here: import the module you need.
"""
