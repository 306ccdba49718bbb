"""The hl7v2 seeder as the tests open it: a source pointing at the test MLLP receiver."""

from __future__ import annotations

from canary.model import SourceSpec
from seeders.hl7v2.seeder import Hl7v2Seeder

OPTIONS = {
    "sending_application": "GAM_HEXAGONE",
    "sending_facility": "CHU_RENNES",
    "receiving_application": "DPI",
    "receiving_facility": "CHU_RENNES",
    "pi_authority": "CHU_RENNES&1.2.250.1.211.10.200.2&ISO",
    "pi_prefix": "98",
}


def make_seeder(server_url: str, **options) -> Hl7v2Seeder:
    settings = {**OPTIONS, **options}
    spec = SourceSpec(name="dpi-rennes", seeder="hl7v2", url=server_url,
                      options=Hl7v2Seeder.validate_options(settings))
    seeder = Hl7v2Seeder(spec, server_url)
    seeder.open()
    return seeder
