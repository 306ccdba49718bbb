"""Identity.to_dict is written by hand for speed: it must stay complete and exact."""

from __future__ import annotations

from dataclasses import asdict, fields

from canary.contacts import demo_contacts
from canary.identity.generator import IdentityGenerator
from canary.model import INS_NIR_OID, Identity


def test_to_dict_is_asdict_with_json_types_and_round_trips():
    generator = IdentityGenerator(demo_contacts(), seed=11, reserve_phones=False)
    for identity in generator.generate_many(200):
        expected = asdict(identity)
        expected.update(sex=identity.sex.value, birth_date=identity.birth_date.isoformat(),
                        first_names=list(identity.first_names), allergies=list(identity.allergies),
                        treatments=list(identity.treatments), ins_oid=INS_NIR_OID)
        assert identity.to_dict() == expected
        assert Identity.from_dict(identity.to_dict()) == identity
    assert set(identity.to_dict()) == {f.name for f in fields(Identity)} | {"ins_oid"}
