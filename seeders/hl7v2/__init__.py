"""The ``hl7v2`` seeder: IHE PAM France messages over MLLP (docs/seeders/hl7v2.md).

    lab.py      Laboratory results for a canary as HL7 v2.5.1 ORU^R01 (IHE LTW LAB-3), and their deletion
    message.py  HL7 v2 messages as text: escaping, building segments, reading them back
    mllp.py     MLLP (Minimal Lower Layer Protocol) client: send one HL7 message, read its ACK
    pam.py      ADT messages of IHE PAM with the French national extension (PAM FR 2.10/2.11)
    seeder.py   The ``hl7v2`` seeder: canary patients sent as HL7 v2.5 ADT messages over MLLP

Nothing is imported here: import the module you need.
"""
