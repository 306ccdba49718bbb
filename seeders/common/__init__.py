"""Writings every system shares: how applications write names, dates and phone numbers.

    lab_panels.py  Common laboratory panels: LOINC codes, UCUM units, reference ranges, plausible values,
                   and the panels' tests found by name in a site's catalogue (openelis)
    transforms.py  Value transforms a mapping may apply: text case, accents, phone writings
    writings.py    Which of the usual writings a host used for a value, so a canary can use the same

Nothing is imported here: import the module you need.
"""
