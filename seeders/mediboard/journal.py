"""The history entries Mediboard writes for each object it stores: ``user_log`` or ``user_action``.

``CStoredObject::store`` (``core/classes/CStoredObject.php``) prepares the
entry before the SQL statement and writes it after: with the instance config
``activer_user_action`` on, ``prepareUserAction``/``doUserAction`` write a
``user_action`` row (the class as an ``object_class`` id) and one
``user_action_data`` row per changed field holding its old value; otherwise
``prepareLog``/``doLog`` write a ``user_log`` row whose ``fields`` lists the
changed fields and ``extra`` their old values as JSON. A creation has no field
list and no old values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from seeders.mediboard.host import MediboardHost
from seeders.sql.rows import Ref

# add(table, values, alias, refs) as rows.build_rows defines it
Add = Callable[[str, dict[str, Any], str, dict[str, Ref]], None]
KEYS = {"user_log": "user_log_id", "user_action": "user_action_id", "user_action_data": "user_action_data_id"}


@dataclass(slots=True)
class Journal:
    host: MediboardHost
    now: datetime
    add: Add
    count: int = 0
    prefix: str = ""  # alias prefix, so that entries added later to a placement keep unique names
    class_ids: dict[str, int] | None = None  # object_class ids beyond the host's (user_action sites)
    addresses: dict[int, bytes | None] | None = None  # where users other than the host's creator work from

    def create(self, alias: str, key: str, object_class: str, user_id: int | None = None) -> None:
        """The 'create' entry of the object inserted under ``alias`` (primary key ``key``), by ``user_id``."""
        self._entry(alias, key, object_class, "create", {}, user_id)

    def store(self, alias: str, key: str, object_class: str, old: dict[str, Any]) -> None:
        """A 'store' entry: the fields in ``old`` changed from these values."""
        self._entry(alias, key, object_class, "store", old)

    def _entry(self, alias: str, key: str, object_class: str, kind: str, old: dict[str, Any],
               user_id: int | None = None) -> None:
        self.count += 1
        name = f"{self.prefix}{self.host.log_table}_{self.count}"
        ref = {"object_id": Ref(alias, key)}
        user = self.host.user_id if user_id is None else user_id
        address = self.host.ip_address if user == self.host.user_id else (self.addresses or {}).get(user)
        if self.host.log_table == "user_action":
            class_id = {**self.host.class_ids, **(self.class_ids or {})}[object_class]
            self.add("user_action", {"user_id": user, "object_class_id": class_id, "type": kind, "date": self.now,
                                     "ip_address": address}, name, ref)
            for n, (field, value) in enumerate(old.items()):
                self.add("user_action_data", {"field": field, "value": value}, f"{name}_data_{n}",
                         {"user_action_id": Ref(name, "user_action_id")})
            return
        # prepareLog: old values utf8-encoded, a NULL one as "", json_encode'd without spaces.
        extra = json.dumps({f: "" if v is None else str(v) for f, v in old.items()}, separators=(",", ":"),
                           ensure_ascii=True) if old else None
        self.add("user_log", {"user_id": user, "object_class": object_class, "type": kind, "date": self.now,
                              "fields": " ".join(old) or None, "ip_address": address, "extra": extra}, name, ref)
