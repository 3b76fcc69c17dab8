"""The trust policy of a workspace: trusted signing keys, revocations, and what may be flashed.

Trust is pinned to a key, never to a name. A key's identity is its fingerprint (SHA-256 of the raw
Ed25519 public key, `core.package.key_fingerprint`); every imported version stores the fingerprint
of the key that verified its signature. Replacing the key stored under a signer name, or revoking
a key, therefore makes everything the old key signed unflashable (with a reason naming the key)
until it is re-signed and imported again. Every change of trust is appended to the `trust_events`
table with who and when; revocation is permanent (a revoked key cannot be trusted again).

`check_flashable` is the ONE rule every path to an ECU asks (the `flash` CLI, the Flash panel, the
update workflow, the target resolver): the signature policy, the key still being trusted, the
package policy of the secure-OTA world (TUF/Uptane) — the ECU's hardware ID and bootloader version
must be among those the package lists, and an image may not go below the installed release
counter unless a downgrade allowance signed by a trusted key exists for it.

Thread use: any thread; the workspace serialises DB access.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fota_studio.core import package
from fota_studio.core.errors import PackageError, RepositoryError
from fota_studio.infra.user import current_user
from fota_studio.infra.workspace import Workspace

if TYPE_CHECKING:
    from fota_studio.core.ea import EcuDefinition
    from fota_studio.infra.repository import VersionInfo

#: Workspace setting that makes imports and flashing require a validly signed package.
REQUIRE_SIGNED_SETTING = "require_signed_packages"

#: What a downgrade allowance statement is (its `type` field).
ALLOWANCE_TYPE = "fota-studio/downgrade-allowance/v1"

EVENT_TRUSTED = "trusted"
EVENT_REPLACED = "replaced"
EVENT_REVOKED = "revoked"
EVENT_POLICY = "policy"
EVENT_RESIGNED = "re-signed"


class NotFlashableError(RepositoryError):
    """A version may not be written into this ECU; the message says why and what to do."""


@dataclass(frozen=True)
class TrustedKey:
    """A trusted package-signing key: the name it is listed under and its fingerprint."""

    name: str
    fingerprint: str
    public_key_pem: bytes
    added_at: str


@dataclass(frozen=True)
class TrustEvent:
    """One entry of the append-only trust log."""

    at: str
    by: str
    action: str  # trusted | replaced | revoked | policy | re-signed
    name: str
    fingerprint: str
    reason: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _user(by: str | None) -> str:
    return by or current_user()


def _short(fp: str) -> str:
    return fp[:16] + "…" if len(fp) > 16 else fp


def _clean_name(name: str) -> str:
    text = (name or "").strip()
    if not text or not text.isprintable() or len(text) > 128:
        raise RepositoryError(
            f"signer name {name!r} is empty, too long or holds control characters",
            hint="give a plain name such as 'oem-release'",
        )
    return text


class TrustStore:
    """The trusted keys, the trust log, the signed-packages policy and downgrade allowances."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- keys ------------------------------------------------------------------------------

    def keys(self) -> list[TrustedKey]:
        """Every currently trusted key, by name."""
        rows = self.ws.read("SELECT name, public_key_pem, added_at FROM trusted_keys ORDER BY name")
        out = []
        for r in rows:
            pem = str(r["public_key_pem"]).encode("ascii")
            try:
                fp = package.key_fingerprint(pem)
            except PackageError:
                continue  # a damaged row trusts nothing
            if fp in self.revoked():
                continue
            out.append(TrustedKey(r["name"], fp, pem, r["added_at"]))
        return out

    def trusted_keys(self) -> dict[str, bytes]:
        """name -> public key PEM of the trusted (not revoked) keys, for `read_package`."""
        return {k.name: k.public_key_pem for k in self.keys()}

    def trusted_fingerprints(self) -> set[str]:
        """Fingerprints of the keys trusted now."""
        return {k.fingerprint for k in self.keys()}

    def add(self, name: str, public_pem: bytes, *, by: str | None = None) -> TrustedKey:
        """Trust `public_pem` (Ed25519) as signer `name`.

        Replacing the key under an existing name is logged as "replaced": what the old key
        signed is no longer trusted. A revoked key is refused (revocation is permanent).
        """
        name = _clean_name(name)
        try:
            fp = package.key_fingerprint(public_pem)
        except PackageError as exc:
            raise RepositoryError(
                f"trusted key {name!r}: {exc.message}",
                hint="pass the public key file written by the package signing tool",
            ) from None
        revoked = self.revocation(fp)
        if revoked is not None:
            raise RepositoryError(
                f"key {fp} was revoked on {revoked.at} by {revoked.by}"
                + (f" ({revoked.reason})" if revoked.reason else "")
                + "; a revoked key is never trusted again",
                hint="generate a new signing key and trust its public key",
            )
        pem_text = public_pem.decode("ascii").strip() + "\n"
        who = _user(by)
        at = _now()
        with self.ws.transaction() as cur:
            old = cur.execute(
                "SELECT public_key_pem FROM trusted_keys WHERE name = ?", (name,)
            ).fetchone()
            old_fp = ""
            if old is not None:
                try:
                    old_fp = package.key_fingerprint(str(old[0]).encode("ascii"))
                except PackageError:
                    old_fp = ""
            cur.execute(
                "INSERT INTO trusted_keys(name, public_key_pem, added_at) VALUES(?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET public_key_pem = excluded.public_key_pem, "
                "added_at = excluded.added_at",
                (name, pem_text, at),
            )
            if old_fp and old_fp != fp:
                self._log(cur, at, who, EVENT_REPLACED, name, old_fp, f"replaced by key {fp}")
            if old_fp != fp:
                self._log(cur, at, who, EVENT_TRUSTED, name, fp, "")
        return TrustedKey(name, fp, pem_text.encode("ascii"), at)

    def _find(self, name_or_fingerprint: str) -> TrustedKey:
        wanted = name_or_fingerprint.strip()
        for key in self.keys():
            if wanted in (key.name, key.fingerprint) or (
                len(wanted) >= 8 and key.fingerprint.startswith(wanted.lower())
            ):
                return key
        known = ", ".join(f"{k.name} ({_short(k.fingerprint)})" for k in self.keys()) or "none"
        raise RepositoryError(
            f"no trusted key named or with fingerprint {wanted!r} (trusted: {known})",
            hint="list them with `fota-studio repo trust --list`",
        )

    def remove(self, name_or_fingerprint: str, *, reason: str = "", by: str | None = None) -> str:
        """Stop trusting a key (by name or fingerprint / its first 8+ hex digits) and revoke it.

        Returns the fingerprint. What the key signed becomes unflashable; the revocation is
        appended to the trust log and is permanent.
        """
        key = self._find(name_or_fingerprint)
        who = _user(by)
        at = _now()
        with self.ws.transaction() as cur:
            cur.execute("DELETE FROM trusted_keys WHERE name = ?", (key.name,))
            self._log(cur, at, who, EVENT_REVOKED, key.name, key.fingerprint, reason.strip())
        return key.fingerprint

    @staticmethod
    def _log(
        cur: Any, at: str, by: str, action: str, name: str, fingerprint: str, reason: str
    ) -> None:
        # Append-only: no code path updates or deletes trust_events rows, and the database
        # refuses it too (a trigger cannot be created by the migration runner, which splits
        # scripts on ";", so it is made here, inside the writing transaction).
        for op in ("UPDATE", "DELETE"):
            cur.execute(
                f"CREATE TRIGGER IF NOT EXISTS trust_events_no_{op.lower()} BEFORE {op} ON "
                "trust_events BEGIN SELECT RAISE(ABORT, 'trust_events is append-only'); END"
            )
        cur.execute(
            "INSERT INTO trust_events(at, by, action, name, fingerprint, reason) "
            "VALUES(?, ?, ?, ?, ?, ?)",
            (at, by, action, name, fingerprint, reason),
        )

    def events(self) -> list[TrustEvent]:
        """The trust log, oldest first."""
        rows = self.ws.read(
            "SELECT at, by, action, name, fingerprint, reason FROM trust_events ORDER BY id"
        )
        return [
            TrustEvent(r["at"], r["by"], r["action"], r["name"], r["fingerprint"], r["reason"])
            for r in rows
        ]

    def revoked(self) -> set[str]:
        """Fingerprints of revoked keys."""
        rows = self.ws.read(
            "SELECT DISTINCT fingerprint FROM trust_events WHERE action = ?", (EVENT_REVOKED,)
        )
        return {str(r["fingerprint"]) for r in rows}

    def revocation(self, fingerprint: str) -> TrustEvent | None:
        """The revocation of a key, or None when it was never revoked."""
        for event in self.events():
            if event.action == EVENT_REVOKED and event.fingerprint == fingerprint:
                return event
        return None

    def why_untrusted(self, fingerprint: str) -> str:
        """Why a key is not trusted now (revoked / replaced / never trusted), for messages."""
        revoked = self.revocation(fingerprint)
        if revoked is not None:
            why = f" ({revoked.reason})" if revoked.reason else ""
            return f"revoked on {revoked.at} by {revoked.by}{why}"
        for event in reversed(self.events()):
            if event.action == EVENT_REPLACED and event.fingerprint == fingerprint:
                return f"replaced under the name {event.name!r} on {event.at} by {event.by}"
        return "not among the trusted keys"

    # -- policy ----------------------------------------------------------------------------

    @property
    def require_signed_packages(self) -> bool:
        """When True, imports and flashing accept only versions signed by a trusted key."""
        return bool(self.ws.get_setting(REQUIRE_SIGNED_SETTING, False))

    def set_require_signed(self, value: bool, *, by: str | None = None) -> None:
        """Switch the signed-packages policy (logged in the trust log)."""
        with self.ws.transaction() as cur:
            cur.execute(
                "INSERT INTO settings(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (REQUIRE_SIGNED_SETTING, json.dumps(bool(value))),
            )
            self._log(
                cur,
                _now(),
                _user(by),
                EVENT_POLICY,
                REQUIRE_SIGNED_SETTING,
                "",
                "on" if value else "off",
            )

    # -- re-signing ------------------------------------------------------------------------

    def apply_resigned_package(self, data: bytes, *, source: str, by: str | None = None) -> str:
        """Record a new signature for an existing version from a package re-signed by a trusted
        key (same brand/model/version and the same image file bytes). Returns the version label.

        This is how a version signed by a replaced or revoked key becomes flashable again: the
        firmware stays the same, its signature and package policy are those of the new package.
        """
        loaded = package.read_package(
            data, source=source, trusted_keys=self.trusted_keys(), require_signature=True
        )
        man = loaded.manifest
        rows = self.ws.read(
            "SELECT v.id, v.blob_sha256 FROM versions v JOIN repositories r "
            "ON r.id = v.repository_id WHERE r.brand = ? AND r.model = ? AND v.version = ?",
            (man.brand, man.model, man.version),
        )
        label = f"{man.brand} / {man.model} {man.version}"
        if not rows:
            raise RepositoryError(
                f"{source}: no version {label} to re-sign",
                hint="import the package as a new version with `fota-studio repo import`",
            )
        if rows[0]["blob_sha256"] != man.file_sha256:
            raise RepositoryError(
                f"{source}: the image file differs from the stored {label} "
                f"({man.file_sha256[:12]}… vs {str(rows[0]['blob_sha256'])[:12]}…); a re-signed "
                "package must carry the same firmware",
                hint="import different firmware as a new version",
            )
        with self.ws.transaction() as cur:
            cur.execute(
                "UPDATE versions SET signature_state = ?, signer = ?, signer_fingerprint = ?, "
                "hardware_ids = ?, bootloader_versions = ?, release_counter = ? WHERE id = ?",
                (
                    loaded.signature_state,
                    loaded.signer or "",
                    loaded.signer_fingerprint,
                    json.dumps(list(man.hardware_ids)),
                    json.dumps(list(man.bootloader_versions)),
                    man.release_counter,
                    int(rows[0]["id"]),
                ),
            )
            self._log(
                cur,
                _now(),
                _user(by),
                EVENT_RESIGNED,
                loaded.signer or "",
                loaded.signer_fingerprint,
                label,
            )
        return label

    # -- downgrade allowances --------------------------------------------------------------

    def add_downgrade_allowance(
        self,
        signing_key: Ed25519PrivateKey,
        *,
        brand: str,
        model: str,
        version: str,
        machine: str = "",
        ecu: str = "",
        reason: str = "",
        by: str | None = None,
    ) -> str:
        """Store a downgrade allowance signed with `signing_key`, whose public key must be
        trusted; returns its fingerprint. `machine`/`ecu` empty = any machine / any ECU."""
        fp = package.key_fingerprint(package.public_pem_of(signing_key))
        if fp not in self.trusted_fingerprints():
            raise RepositoryError(
                f"the allowance signing key {fp} is not a trusted key",
                hint="sign with the private key of a trusted signer (`repo trust --list`)",
            )
        statement = {
            "type": ALLOWANCE_TYPE,
            "brand": brand,
            "model": model,
            "version": version,
            "machine": machine,
            "ecu": ecu,
            "reason": reason,
            "issued_at": _now(),
        }
        body = _canonical(statement)
        sig = base64.b64encode(signing_key.sign(body)).decode("ascii")
        with self.ws.transaction() as cur:
            cur.execute(
                "INSERT INTO downgrade_allowances(statement, signature, fingerprint, added_at, "
                "added_by) VALUES(?, ?, ?, ?, ?)",
                (body.decode("utf-8"), sig, fp, _now(), _user(by)),
            )
        return fp

    def downgrade_allowed(
        self, brand: str, model: str, version: str, machine: str, ecu: str
    ) -> bool:
        """True when a valid allowance, signed by a key trusted NOW, covers this downgrade."""
        trusted = {k.fingerprint: k.public_key_pem for k in self.keys()}
        rows = self.ws.read("SELECT statement, signature, fingerprint FROM downgrade_allowances")
        for r in rows:
            pem = trusted.get(str(r["fingerprint"]))
            if pem is None:
                continue
            body = str(r["statement"]).encode("utf-8")
            if not _signature_ok(pem, body, str(r["signature"])):
                continue
            try:
                st = json.loads(body)
            except json.JSONDecodeError:
                continue
            if not isinstance(st, dict) or st.get("type") != ALLOWANCE_TYPE:
                continue
            if (st.get("brand"), st.get("model"), st.get("version")) != (brand, model, version):
                continue
            if st.get("machine") not in ("", machine) or st.get("ecu") not in ("", ecu):
                continue
            return True
        return False

    # -- the one rule ----------------------------------------------------------------------

    def flash_problem(
        self,
        version: VersionInfo,
        *,
        ecu: EcuDefinition | None = None,
        machine: str = "",
        installed_version: str | None = None,
        bootloader_version: str | None = None,
    ) -> str | None:
        """Why `version` may not be written into `ecu` of `machine`, or None when it may."""
        problem = self._signature_problem(version)
        if problem is not None:
            return problem
        if version.hardware_ids and ecu is not None:
            hw = ecu.hardware_version.strip()
            if hw not in version.hardware_ids:
                fits = ", ".join(version.hardware_ids)
                return (
                    f"{version.label} fits hardware {fits}, but ECU {ecu.name} is "
                    + (f"hardware {hw!r}" if hw else "of unknown hardware (no hardware_version)")
                    + " in its Electronic Architecture"
                )
        if (
            version.bootloader_versions
            and bootloader_version is not None
            and bootloader_version.strip() not in version.bootloader_versions
        ):
            fits = ", ".join(version.bootloader_versions)
            return (
                f"{version.label} fits bootloader {fits}, but the ECU runs bootloader "
                f"{bootloader_version!r}"
            )
        if version.release_counter is not None and installed_version:
            installed = self._release_counter(version, installed_version)
            if installed is not None and version.release_counter < installed:
                ecu_name = ecu.name if ecu is not None else ""
                if not self.downgrade_allowed(
                    version.brand, version.model, version.version, machine, ecu_name
                ):
                    return (
                        f"{version.label} has release counter {version.release_counter}, below "
                        f"the installed {installed_version} ({installed}): a downgrade needs a "
                        "downgrade allowance signed by a trusted key"
                    )
        return None

    def _signature_problem(self, v: VersionInfo) -> str | None:
        if v.signature_state == "valid" and v.signer_fingerprint:
            if v.signer_fingerprint in self.trusted_fingerprints():
                return None
            return (
                f"{v.label} is signed by key {v.signer_fingerprint} ({v.signer}) which is no "
                f"longer trusted: {self.why_untrusted(v.signer_fingerprint)}"
            )
        if not self.require_signed_packages:
            return None
        if v.signature_state == "valid":
            return (
                f"{v.label} was signed by {v.signer!r} before signing keys were pinned by "
                "fingerprint; this workspace requires packages signed by a trusted key"
            )
        by = f" by {v.signer}" if v.signer else ""
        return (
            f"{v.label} is {v.signature_state}{by}; this workspace requires packages signed by "
            "a trusted key"
        )

    def _release_counter(self, v: VersionInfo, installed_version: str) -> int | None:
        rows = self.ws.read(
            "SELECT v.release_counter FROM versions v JOIN repositories r "
            "ON r.id = v.repository_id WHERE r.brand = ? AND r.model = ? AND v.version = ?",
            (v.brand, v.model, installed_version),
        )
        if not rows or rows[0]["release_counter"] is None:
            return None
        return int(rows[0]["release_counter"])


def check_flashable(
    ws: Workspace,
    version: VersionInfo,
    *,
    ecu: EcuDefinition | None = None,
    machine: str = "",
    installed_version: str | None = None,
    bootloader_version: str | None = None,
) -> None:
    """The one flash policy: return when `version` may be written into `ecu`, else raise
    NotFlashableError naming the reason (untrusted/replaced/revoked key, unsigned under the
    policy, wrong hardware or bootloader, downgrade without a signed allowance)."""
    problem = TrustStore(ws).flash_problem(
        version,
        ecu=ecu,
        machine=machine,
        installed_version=installed_version,
        bootloader_version=bootloader_version,
    )
    if problem is not None:
        raise NotFlashableError(
            problem,
            hint="re-sign the package with a trusted key and import it as a new version, or "
            "choose another version",
        )


def _canonical(statement: Mapping[str, Any]) -> bytes:
    """The exact bytes a statement is signed over (sorted keys, no spaces, UTF-8)."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _signature_ok(public_pem: bytes, body: bytes, signature_b64: str) -> bool:
    try:
        key = serialization.load_pem_public_key(public_pem)
        if not isinstance(key, Ed25519PublicKey):
            return False
        key.verify(base64.b64decode(signature_b64, validate=True), body)
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
    return True
