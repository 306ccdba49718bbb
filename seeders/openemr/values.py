"""Values OpenEMR computes itself when it creates a patient, computed the same way.

* uuids: ``UuidRegistry::createUuid`` makes a "timestamp-first COMB" UUID
  (ramsey/uuid ``TimestampFirstCombCodec`` + ``CombGenerator``): the first 6
  bytes are the time in units of 10 microseconds, big-endian, then random
  bytes with the version-4 and RFC 4122 variant bits. Rows created in a row
  get increasing uuids, like OpenEMR's.
* portal passwords: ``AuthHash::passwordHash`` is PHP ``password_hash``
  (bcrypt, ``$2y$``, cost 10 unless the site changed it).
* ``dupscore``: ``updateDupScore`` stores the highest duplicate score of
  the new patient against every older one (``library/dupscore.inc.php``).
* portal account name: ``fname . lname . id`` (PatientAccessOnsiteService).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import sqlalchemy as sa

_BCRYPT_COST = re.compile(r"^\$2[abxy]\$(\d\d)\$")


def comb_uuid(now: float | None = None, random_bytes: bytes | None = None) -> bytes:
    """16 bytes as OpenEMR's UuidRegistry stores them in BINARY(16) columns."""
    now = time.time() if now is None else now
    # microtime(): seconds followed by the first 5 digits of the fraction.
    ticks = int(now) * 100_000 + int((now - int(now)) * 100_000)
    rand = bytearray(random_bytes if random_bytes is not None else os.urandom(10))
    rand[0] = (rand[0] & 0x0F) | 0x40  # version 4, high nibble of byte 6 of the uuid
    rand[2] = (rand[2] & 0x3F) | 0x80  # RFC 4122 variant, byte 8 of the uuid
    return (ticks & 0xFFFF_FFFF_FFFF).to_bytes(6, "big") + bytes(rand)


def uuid_text(raw: bytes) -> str:
    """The 8-4-4-4-12 writing OpenEMR shows (UuidRegistry::uuidToString)."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def portal_password_hash(password: str, cost: int = 10) -> str:
    """bcrypt as PHP password_hash writes it ($2y$, same algorithm as $2b$)."""
    import bcrypt  # only the portal account needs it

    hashed = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=cost)).decode("ascii")
    return "$2y$" + hashed[4:]


def bcrypt_cost(hashes: list[str], default: int = 10) -> int:
    """The cost most of the existing bcrypt hashes use (the site may have raised it)."""
    costs = [int(m.group(1)) for h in hashes if h and (m := _BCRYPT_COST.match(h))]
    return max(set(costs), key=costs.count) if costs else default


def account_name(fname: str, lname: str, patient_id: int) -> str:
    return f"{fname}{lname}{patient_id}"


def nir_spaced(nir: str) -> str:
    """The NIR as people type it on forms: 1 84 05 75 115 123 45."""
    return " ".join((nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:15]))


def _strip_phone(column: Any) -> Any:
    return sa.func.replace(sa.func.replace(column, "-", ""), " ", "")


# The columns of the new patient the score looks at, bound as parameters named p1_<column>.
DUPSCORE_COLUMNS = ("email", "DOB", "fname", "lname", "sex", "phone_home", "phone_biz", "phone_cell")


def dupscore_params(values: dict[str, Any], pid: int) -> dict[str, Any]:
    params = {f"p1_{name}": values.get(name) or "" for name in DUPSCORE_COLUMNS if name != "DOB"}
    params["p1_DOB"] = values.get("DOB")
    params["new_pid"] = pid
    return params


def dupscore_query(patient_data: sa.Table) -> sa.Select:
    """MAX duplicate score of a new patient against every patient with a lower pid.

    The expression of getDupScoreSQL(), with the new patient's values as
    bound parameters (``dupscore_params``) in place of ``p1``'s columns.
    Build it once per table: it is a large expression.
    """
    p2 = patient_data.alias("p2")

    def p1(name: str) -> Any:
        return sa.bindparam(f"p1_{name}", type_=sa.String)

    def trimmed(value: Any) -> Any:
        return sa.func.trim(value)

    def points(weight: int, condition: Any) -> Any:
        return weight * sa.case((condition, 1), else_=0)

    dob = sa.bindparam("p1_DOB", type_=sa.Date)
    phones_p1 = {name: _strip_phone(p1(name)) for name in ("phone_home", "phone_biz", "phone_cell")}
    score = (
        points(6, sa.and_(trimmed(p1("email")) != "", trimmed(p1("email")) == trimmed(p2.c.email)))
        + points(6, sa.and_(dob.is_not(None), p2.c.DOB.is_not(None), p2.c.DOB == dob))
        + points(6, sa.func.lower(sa.func.concat(trimmed(p1("fname")), "", trimmed(p1("lname"))))
                 == sa.func.lower(sa.func.concat(trimmed(p2.c.fname), "", trimmed(p2.c.lname))))
        + points(6, sa.and_(trimmed(p1("sex")) != "", trimmed(p1("sex")) == trimmed(p2.c.sex)))
        + points(2, sa.func.soundex(p1("lname")) == sa.func.soundex(p2.c.lname))
        + points(1, sa.or_(
            sa.and_(trimmed(p1("phone_home")) != "", phones_p1["phone_home"].in_(
                [_strip_phone(p2.c.phone_home), _strip_phone(p2.c.phone_biz), _strip_phone(p2.c.phone_cell)])),
            sa.and_(trimmed(p1("phone_biz")) != "", phones_p1["phone_biz"].in_(
                [_strip_phone(p2.c.phone_biz), _strip_phone(p2.c.phone_cell)])),
            sa.and_(trimmed(p1("phone_cell")) != "", phones_p1["phone_cell"] == _strip_phone(p2.c.phone_cell)),
        ))
    )
    return sa.select(sa.func.max(score)).where(p2.c.pid < sa.bindparam("new_pid"))
