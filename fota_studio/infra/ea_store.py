"""Storage of Electronic Architectures and machines in the workspace database.

Tables (workspace schema v1): `eas(name, document, updated_at)` holds each EA as the JSON form
of its file tree (`ea_format.ea_to_dict`), `machines(serial, name, ea_name, installed)` the
machines with their installed version per ECU (JSON), and `machine_history` every change of an
installed version. Saving refuses an EA with validation errors, so whatever is stored can be
flashed from.

Thread use: an `EaStore` may be used from any thread; every access goes through the
workspace's serialised `transaction()` / `read()`.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from fota_studio.core.ea import ElectronicArchitecture, Machine, VersionChange
from fota_studio.core.ea_format import ea_from_dict, ea_to_dict
from fota_studio.core.ea_validate import has_errors, validate
from fota_studio.core.errors import ArchitectureError, WorkspaceError
from fota_studio.infra.workspace import Workspace


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class EaSummary:
    """One row of the EA list."""

    name: str
    description: str
    machine_model: str
    ecu_names: tuple[str, ...]
    updated_at: str
    machines: int


class EaStore:
    """EAs and machines of one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- EAs -------------------------------------------------------------------------------

    def names(self) -> builtins.list[str]:
        """Names of every stored EA, sorted."""
        return [r["name"] for r in self.ws.read("SELECT name FROM eas ORDER BY name")]

    def list(self) -> list[EaSummary]:
        """A summary of every stored EA, sorted by name."""
        counts = {
            r["ea_name"]: r["n"]
            for r in self.ws.read(
                "SELECT ea_name, COUNT(*) AS n FROM machines WHERE ea_name IS NOT NULL "
                "GROUP BY ea_name"
            )
        }
        out = []
        for r in self.ws.read("SELECT name, document, updated_at FROM eas ORDER BY name"):
            doc = json.loads(r["document"])
            out.append(
                EaSummary(
                    name=r["name"],
                    description=str(doc.get("description", "")),
                    machine_model=str(doc.get("machine_model", "")),
                    ecu_names=tuple(str(e.get("name", "")) for e in doc.get("ecus", [])),
                    updated_at=r["updated_at"],
                    machines=int(counts.get(r["name"], 0)),
                )
            )
        return out

    def exists(self, name: str) -> bool:
        """True when an EA with this name is stored."""
        return bool(self.ws.read("SELECT 1 FROM eas WHERE name = ?", (name,)))

    def find(self, name: str) -> ElectronicArchitecture | None:
        """The stored EA with this name, or None."""
        rows = self.ws.read("SELECT document FROM eas WHERE name = ?", (name,))
        if not rows:
            return None
        try:
            ea = ea_from_dict(json.loads(rows[0]["document"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise WorkspaceError(
                f'EA "{name}" in {self.ws.root} cannot be read: {exc}',
                hint="re-import it from its YAML file with `fota-studio ea import --replace`",
            ) from exc
        ea.name = name
        return ea

    def get(self, name: str) -> ElectronicArchitecture:
        """The stored EA with this name; ArchitectureError names the known EAs when missing."""
        ea = self.find(name)
        if ea is None:
            known = ", ".join(self.names()) or "none"
            raise ArchitectureError(
                f'no Electronic Architecture "{name}" in the workspace (known: {known})',
                hint="import one with `fota-studio ea import FILE`",
            )
        return ea

    def save(self, ea: ElectronicArchitecture, *, replace: bool = True) -> None:
        """Store an EA under its name; refuses one with validation errors.

        With `replace=False` an existing EA of that name is an error (the CLI's import without
        `--replace`).
        """
        problems = validate(ea)
        if has_errors(problems):
            lines = "; ".join(str(p) for p in problems[:5])
            more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
            raise ArchitectureError(
                f'EA "{ea.name}" is not valid: {lines}{more}', hint="fix the problems and save"
            )
        doc = json.dumps(ea_to_dict(ea), ensure_ascii=False)
        with self.ws.transaction() as cur:
            exists = cur.execute("SELECT 1 FROM eas WHERE name = ?", (ea.name,)).fetchone()
            if exists and not replace:
                raise ArchitectureError(
                    f'an EA named "{ea.name}" already exists in the workspace',
                    hint="use --replace to overwrite it",
                )
            cur.execute(
                "INSERT INTO eas(name, document, updated_at) VALUES(?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET document = excluded.document, "
                "updated_at = excluded.updated_at",
                (ea.name, doc, _now()),
            )

    def delete(self, name: str) -> None:
        """Delete an EA; refused while machines are assigned to it."""
        with self.ws.transaction() as cur:
            serials = [
                r["serial"]
                for r in cur.execute("SELECT serial FROM machines WHERE ea_name = ?", (name,))
            ]
            if serials:
                raise ArchitectureError(
                    f'EA "{name}" is assigned to {", ".join(serials)}',
                    hint="assign those machines to another EA first",
                )
            if cur.execute("DELETE FROM eas WHERE name = ?", (name,)).rowcount == 0:
                raise ArchitectureError(f'no Electronic Architecture "{name}" to delete')

    def rename(self, old: str, new: str) -> None:
        """Rename an EA; assigned machines follow (ON UPDATE CASCADE)."""
        if old == new:
            return
        if not new.strip():
            raise ArchitectureError("an EA name cannot be empty")
        with self.ws.transaction() as cur:
            row = cur.one(
                "SELECT document FROM eas WHERE name = ?",
                (old,),
                ArchitectureError(f'no Electronic Architecture "{old}" to rename'),
            )
            if cur.execute("SELECT 1 FROM eas WHERE name = ?", (new,)).fetchone():
                raise ArchitectureError(f'an EA named "{new}" already exists')
            doc = json.loads(row["document"])
            doc["name"] = new
            cur.execute(
                "UPDATE eas SET name = ?, document = ?, updated_at = ? WHERE name = ?",
                (new, json.dumps(doc, ensure_ascii=False), _now(), old),
            )

    def known_repositories(self) -> set[tuple[str, str]]:
        """(brand, model) of every Software Repository in the workspace (for validate())."""
        return {
            (r["brand"], r["model"]) for r in self.ws.read("SELECT brand, model FROM repositories")
        }

    # -- machines --------------------------------------------------------------------------

    def list_machines(self) -> builtins.list[Machine]:
        """Every machine (without history), sorted by serial."""
        rows = self.ws.read("SELECT serial, name, ea_name, installed FROM machines ORDER BY serial")
        return [self._machine(r, history=False) for r in rows]

    def find_machine(self, serial: str) -> Machine | None:
        """A machine with its version history, or None."""
        rows = self.ws.read(
            "SELECT serial, name, ea_name, installed FROM machines WHERE serial = ?", (serial,)
        )
        return self._machine(rows[0], history=True) if rows else None

    def get_machine(self, serial: str) -> Machine:
        """A machine with its version history; ArchitectureError when unknown."""
        m = self.find_machine(serial)
        if m is None:
            known = ", ".join(x.serial for x in self.list_machines()) or "none"
            raise ArchitectureError(
                f'no machine "{serial}" in the workspace (known: {known})',
                hint="create it with `fota-studio ea assign --machine SERIAL --ea NAME`",
            )
        return m

    def _machine(self, r: sqlite3.Row, *, history: bool) -> Machine:
        m = Machine(
            serial=r["serial"],
            ea_name=r["ea_name"],
            name=r["name"],
            installed=dict(json.loads(r["installed"])),
        )
        if history:
            m.history = [
                VersionChange(ecu=h["ecu"], version=h["version"], at=h["at"], source=h["source"])
                for h in self.ws.read(
                    "SELECT ecu, version, at, source FROM machine_history WHERE serial = ? "
                    "ORDER BY id",
                    (m.serial,),
                )
            ]
        return m

    def assign(self, serial: str, ea_name: str | None, *, name: str | None = None) -> Machine:
        """Assign a machine to an EA (None: unassign), creating the machine when new."""
        if not serial.strip():
            raise ArchitectureError("a machine needs a serial")
        with self.ws.transaction() as cur:
            if (
                ea_name is not None
                and not cur.execute("SELECT 1 FROM eas WHERE name = ?", (ea_name,)).fetchone()
            ):
                raise ArchitectureError(
                    f'no Electronic Architecture "{ea_name}" to assign "{serial}" to',
                    hint="import the EA first (`fota-studio ea import FILE`)",
                )
            exists = cur.execute("SELECT 1 FROM machines WHERE serial = ?", (serial,)).fetchone()
            if exists:
                cur.execute("UPDATE machines SET ea_name = ? WHERE serial = ?", (ea_name, serial))
                if name is not None:
                    cur.execute("UPDATE machines SET name = ? WHERE serial = ?", (name, serial))
            else:
                cur.execute(
                    "INSERT INTO machines(serial, name, ea_name, installed) VALUES(?, ?, ?, '{}')",
                    (serial, name or "", ea_name),
                )
        return self.get_machine(serial)

    def set_installed(
        self, serial: str, ecu: str, version: str | None, source: str = ""
    ) -> VersionChange:
        """Record the installed version of one ECU of a machine (None: unknown), with history."""
        change = VersionChange(ecu=ecu, version=version, at=_now(), source=source)
        with self.ws.transaction() as cur:
            row = cur.one(
                "SELECT installed FROM machines WHERE serial = ?",
                (serial,),
                ArchitectureError(f'no machine "{serial}" in the workspace'),
            )
            installed = dict(json.loads(row["installed"]))
            installed[ecu] = version
            cur.execute(
                "UPDATE machines SET installed = ? WHERE serial = ?",
                (json.dumps(installed, sort_keys=True), serial),
            )
            cur.execute(
                "INSERT INTO machine_history(serial, ecu, version, at, source) "
                "VALUES(?, ?, ?, ?, ?)",
                (serial, ecu, version, change.at, source),
            )
        return change
