"""The ``openelis`` seeder: OpenELIS Global 2 in PostgreSQL (docs/seeders/openelis.md).

    accession.py  The next accession number, in the site's own numbering
    clock.py      Timestamps as OpenELIS's Java side takes them: one millisecond reading per row
    contact.py    The contact person OpenELIS writes with every patient created from the patient form
    fhirstore.py  Whether OpenELIS's local FHIR store holds the canary's Patient resource
    footprint.py  A canary's laboratory life: one validated request, as OpenELIS writes it
    labsite.py    What a canary's laboratory footprint copies from the site, read once at ``open()``
    locate.py     Find an OpenELIS canary that was planted but never recorded in the registry
    planner.py    How one OpenELIS row and its audit row are described as ``RowPlan`` values
    rows.py       The rows of one OpenELIS patient, as the "Add patient" form's save writes them
    seeder.py     The OpenELIS seeder: canary patients written straight into an OpenELIS Global database
    setup.py      The OpenELIS metadata a canary patient refers to, read once at ``open()``
    siteview.py   The site as a copy of clinlims shows it, for the separability audit (and its postcodes)
    updates.py    The ``history`` ``U`` rows of the result entry and validation saves
    version.py    Which OpenELIS schema the database holds, read from the schema itself

Nothing is imported here: import the module you need.
"""
