"""Identities: consistent, realistic French patients with the contact points we watch (docs/identities.md).

    accounts.py   Online traces of a fake patient: email, portal account, access code, DNS label
    ages.py       Age profiles: which ages the canary patients have
    generator.py  The canary identity generator: fake French patients, every field consistent
    medical.py    Medical content of a fake patient: blood group, allergies, treatments, GP
    names.py      Names of a fake patient: sex, civility, given names, surnames
    nir.py        The NIR (numéro de sécurité sociale): layout, key, and birth-place coding
    phonepool.py  Hands out numbers from the configured phone pool
    places.py     Where a fake patient was born and where they live
    refdata.py    Reference data shipped inside the package (built by scripts/build_refdata.py)
    sampling.py   Weighted draws and the two random streams of the identity generator

Nothing is imported here: import the module you need.
"""
