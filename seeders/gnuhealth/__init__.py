"""The ``gnuhealth`` seeder: GNU Health (Tryton) in PostgreSQL (docs/seeders/gnuhealth.md).

    host.py    How one GNU Health database writes its patients, learned from its latest ones
    rows.py    The rows GNU Health writes for one new patient, as ``RowPlan`` values
    site.py    Which GNU Health version the database is (4.4, 5.0), and its site setup (federation country, company)
    seeder.py  The GNU Health seeder: patients written into a GNU Health HMIS database (Tryton tables)

Nothing is imported here: import the module you need.
"""
