"""Seed/key providers: turn an ECU's seed into the key for one SecurityAccess level.

A `SeedKeyProvider` computes `key(seed, level, ecu_name)`. The registry resolves a level's
`algorithm` name in this order:

1. `vector:<path>` → a Vector-compatible seed/key library (`GenerateKeyEx` / `GenerateKeyExOpt`,
   .dll on Windows, .so on Linux) via `protocols/seedkey_dll.py`;
2. a Python plugin registered under the entry-point group `fota_studio.seedkey` (the entry point
   loads a class or factory returning a provider), or one registered with `register()`;
3. a built-in algorithm of `core/seedkey.compute_key` (xor32, table_xor, ...).

Secrets named by `SecurityLevel.secret_ref` come from the OS keyring (`infra/secrets.py`) and are
never logged. Called from the engine worker thread running the job.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

from fota_studio.core.ea import SecurityLevel
from fota_studio.core.errors import SecurityAccessError
from fota_studio.infra import secrets

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fota_studio.seedkey"
VECTOR_PREFIX = "vector:"
#: Extra trusted folders for seed/key libraries (os.pathsep-separated), besides the per-user one.
TRUSTED_DIRS_ENV = "FOTA_STUDIO_SEEDKEY_DIRS"


def default_trusted_library_dirs() -> list[Path]:
    """Folders whose seed/key libraries may be loaded: `<user config>/seedkey` + the env list.

    An EA file names a library by path; loading it runs native code, so an EA from an untrusted
    source must not be able to point anywhere (docs/SECURITY.md). The technician puts the OEM's
    library into a trusted folder on purpose.
    """
    from fota_studio.infra.paths import config_dir

    dirs = [config_dir() / "seedkey"]
    extra = os.environ.get(TRUSTED_DIRS_ENV, "")
    dirs += [Path(d) for d in extra.split(os.pathsep) if d.strip()]
    return dirs


def check_trusted_library(path: Path, trusted_dirs: Sequence[Path]) -> Path:
    """Return the resolved library path, or raise SecurityAccessError when it is not trusted."""
    resolved = path.expanduser().resolve()
    for folder in trusted_dirs:
        try:
            resolved.relative_to(folder.expanduser().resolve())
        except ValueError:
            continue
        return resolved
    folders = ", ".join(str(d) for d in trusted_dirs) or "none"
    raise SecurityAccessError(
        f"seed/key library {path} is not in a trusted folder (trusted: {folders})",
        hint="copy the OEM's library into a trusted folder, or add its folder to "
        f"{TRUSTED_DIRS_ENV}; libraries named by an EA file are never loaded from elsewhere",
    )


@runtime_checkable
class SeedKeyProvider(Protocol):
    """Computes the SecurityAccess key for a seed."""

    def key(self, seed: bytes, level: SecurityLevel, ecu: str) -> bytes:
        """Return the key for `seed` at `level` of ECU `ecu`."""
        ...


class BuiltinProvider:
    """The algorithms of `core/seedkey` with the level's params and optional keyring secret."""

    def key(self, seed: bytes, level: SecurityLevel, ecu: str) -> bytes:
        """Compute the key with `core.seedkey.compute_key`."""
        try:
            from fota_studio.core import seedkey as core_seedkey
        except ImportError as exc:  # pragma: no cover - the module ships with the product
            raise SecurityAccessError("built-in seed/key algorithms are not available") from exc
        secret = secrets.require_secret(level.secret_ref) if level.secret_ref else None
        return bytes(core_seedkey.compute_key(level.algorithm, seed, level.params, secret))


class VectorLibraryProvider:
    """A Vector-compatible seed/key library at `path` (loaded lazily, once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lib: object | None = None

    def key(self, seed: bytes, level: SecurityLevel, ecu: str) -> bytes:
        """Call the library's GenerateKeyEx(Opt) for this level."""
        from fota_studio.protocols.seedkey_dll import SeedKeyLibrary

        if self._lib is None:
            self._lib = SeedKeyLibrary(self.path)
        assert isinstance(self._lib, SeedKeyLibrary)
        variant = str(level.params.get("variant", ""))
        option = level.params.get("option")
        secret = secrets.get_secret(level.secret_ref) if level.secret_ref else None
        if option is None and secret is not None:
            option = secret
        return bytes(
            self._lib.generate_key(
                seed,
                level.seed_subfunction,
                variant=variant,
                option=option.encode() if isinstance(option, str) else option,
            )
        )


ProviderFactory = Callable[[], SeedKeyProvider]


class SeedKeyRegistry:
    """Resolves a `SecurityLevel` to a provider (plugins, Vector libraries, built-ins)."""

    def __init__(
        self,
        *,
        load_entry_points: bool = True,
        trusted_library_dirs: Sequence[Path] | None = None,
    ) -> None:
        self.trusted_library_dirs = (
            list(trusted_library_dirs)
            if trusted_library_dirs is not None
            else default_trusted_library_dirs()
        )
        self._factories: dict[str, ProviderFactory] = {}
        self._instances: dict[str, SeedKeyProvider] = {}
        self._builtin = BuiltinProvider()
        if load_entry_points:
            self._load_entry_points()

    def register(self, name: str, factory: ProviderFactory | SeedKeyProvider) -> None:
        """Register a plugin provider under an algorithm name (overrides built-ins)."""
        # A class also "has" a key attribute, so test for classes first.
        if not isinstance(factory, type) and isinstance(factory, SeedKeyProvider):
            self._instances[name] = factory
        else:
            self._factories[name] = factory

    def _load_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            self._factories.setdefault(ep.name, _lazy_entry_point(ep.value))

    def names(self) -> list[str]:
        """Plugin algorithm names known to the registry."""
        return sorted(set(self._factories) | set(self._instances))

    def provider_for(self, level: SecurityLevel) -> SeedKeyProvider:
        """Return the provider for this level's algorithm."""
        algo = level.algorithm
        if algo.startswith(VECTOR_PREFIX):
            path = check_trusted_library(
                Path(algo[len(VECTOR_PREFIX) :]), self.trusted_library_dirs
            )
            return VectorLibraryProvider(path)
        if algo in self._instances:
            return self._instances[algo]
        factory = self._factories.get(algo)
        if factory is not None:
            try:
                inst = factory()
            except Exception as exc:
                raise SecurityAccessError(
                    f'seed/key plugin "{algo}" failed to load: {exc}',
                    hint=f"check the package providing the {ENTRY_POINT_GROUP} entry point",
                ) from exc
            self._instances[algo] = inst
            return inst
        return self._builtin

    def compute_key(self, seed: bytes, level: SecurityLevel, ecu: str) -> bytes:
        """Compute the key; any provider failure becomes SecurityAccessError naming the level."""
        provider = self.provider_for(level)
        try:
            key = provider.key(seed, level, ecu)
        except SecurityAccessError:
            raise
        except Exception as exc:
            raise SecurityAccessError(
                f"{ecu}: seed/key algorithm {level.algorithm!r} for level "
                f"0x{level.seed_subfunction:02X} failed: {type(exc).__name__}: {exc}",
                hint="check the algorithm name and parameters in the EA",
            ) from exc
        if not key:
            raise SecurityAccessError(
                f"{ecu}: seed/key algorithm {level.algorithm!r} returned an empty key"
            )
        return bytes(key)


def _lazy_entry_point(value: str) -> ProviderFactory:
    """Factory importing `module:attr` when first used; attr is a class or a factory."""

    def factory() -> SeedKeyProvider:
        module_name, _, attr = value.partition(":")
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            if part:
                obj = getattr(obj, part)
        inst: object = obj
        if isinstance(obj, type) or not isinstance(obj, SeedKeyProvider):
            if not callable(obj):
                raise SecurityAccessError(f"entry point {value} is not a seed/key provider")
            inst = obj()
        if not isinstance(inst, SeedKeyProvider):
            raise SecurityAccessError(f"entry point {value} is not a seed/key provider")
        return inst

    return factory
