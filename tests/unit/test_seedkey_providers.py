"""Seed/key providers: built-in algorithms, Python plugins, keyring secrets, and a Vector-style
library (GenerateKeyEx / GenerateKeyExOpt) compiled with gcc for the test."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest

from fota_studio.core.ea import SecurityLevel
from fota_studio.core.errors import SecurityAccessError
from fota_studio.engine.seedkey import SeedKeyRegistry
from fota_studio.infra import secrets
from fota_studio.protocols.seedkey_dll import SeedKeyLibrary
from tests.fakes.flash import fast_ecu, fast_sim, flash_image, make_image, memory_matches

C_SOURCE = r"""
#include <string.h>
/* xor32 with a constant per level (like the demo ECUs); 'variant' "BAD" fails. */
static unsigned int constant_for(unsigned int level) {
    return level == 1 ? 0x5A3C9E11u : level == 3 ? 0xC3A50F69u : 0u;
}
int GenerateKeyEx(const unsigned char* seed, unsigned int seed_size, const unsigned int level,
                  const char* variant, unsigned char* key, unsigned int max_key,
                  unsigned int* out_size) {
    unsigned int c = constant_for(level), i;
    if (variant && strcmp(variant, "BAD") == 0) return 3;
    if (c == 0) return 2;
    if (max_key < seed_size) return 1;
    for (i = 0; i < seed_size; i++) {
        unsigned char m = (unsigned char)(c >> (8 * (3 - (i % 4))));
        key[i] = seed[i] ^ m;
    }
    *out_size = seed_size;
    return 0;
}
int GenerateKeyExOpt(const unsigned char* seed, unsigned int seed_size, const unsigned int level,
                     const char* variant, const char* options, unsigned char* key,
                     unsigned int max_key, unsigned int* out_size) {
    int rc = GenerateKeyEx(seed, seed_size, level, variant, key, max_key, out_size);
    if (rc == 0 && options && options[0]) key[0] ^= (unsigned char)options[0];
    return rc;
}
"""


@pytest.fixture
def vector_lib(tmp_path: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the test seed/key library")
    src = tmp_path / "sk.c"
    src.write_text(C_SOURCE)
    lib = tmp_path / "libseedkey.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(src)], check=True)
    return lib


def _level(algorithm: str = "xor32", **params: object) -> SecurityLevel:
    return SecurityLevel(name="l", seed_subfunction=0x01, algorithm=algorithm, params=dict(params))


def test_builtin_xor32() -> None:
    reg = SeedKeyRegistry(load_entry_points=False)
    key = reg.compute_key(bytes.fromhex("11223344"), _level(constant=0x01020304), "VCU")
    assert key == bytes.fromhex("10203040")


def test_unknown_algorithm_is_a_security_error() -> None:
    reg = SeedKeyRegistry(load_entry_points=False)
    with pytest.raises(SecurityAccessError):
        reg.compute_key(b"\x01\x02", _level("nope"), "VCU")


def test_plugin_provider_overrides() -> None:
    class Plus1:
        def key(self, seed: bytes, level: SecurityLevel, ecu: str) -> bytes:
            return bytes((b + 1) & 0xFF for b in seed)

    reg = SeedKeyRegistry(load_entry_points=False)
    reg.register("plus1", Plus1)
    assert reg.compute_key(b"\x01\xff", _level("plus1"), "X") == b"\x02\x00"
    assert "plus1" in reg.names()


def test_entry_point_plugins_are_discovered(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import fota_studio.engine.seedkey as mod

    ep = EntryPoint(
        name="xor_ep",
        value="fota_studio.engine.seedkey:BuiltinProvider",
        group=mod.ENTRY_POINT_GROUP,
    )
    monkeypatch.setattr(mod, "entry_points", lambda group: [ep] if group == ep.group else [])
    reg = SeedKeyRegistry()
    assert "xor_ep" in reg.names()
    assert isinstance(reg.provider_for(_level("xor_ep")), mod.BuiltinProvider)


@pytest.mark.usefixtures("memory_keyring")
def test_secret_from_keyring_never_in_messages() -> None:
    with pytest.raises(SecurityAccessError, match="vcu-level1") as exc_info:
        secrets.require_secret("vcu-level1")
    assert "fota-studio secrets set vcu-level1" in str(exc_info.value)
    secrets.set_secret("vcu-level1", b"\xde\xad\xbe\xef")
    assert secrets.require_secret("vcu-level1") == b"\xde\xad\xbe\xef"
    # the built-in algorithm takes its constant from the keyring secret, not the params
    level = SecurityLevel(
        name="l", seed_subfunction=0x01, algorithm="xor32", secret_ref="vcu-level1"
    )
    reg = SeedKeyRegistry(load_entry_points=False)
    assert reg.compute_key(bytes.fromhex("01020304"), level, "VCU") == bytes.fromhex("DFAFBDEB")
    level.params = {"constant": 0x11111111}  # a stale constant in the EA loses to the secret
    assert reg.compute_key(bytes(4), level, "VCU") == b"\xde\xad\xbe\xef"
    secrets.delete_secret("vcu-level1")
    assert secrets.get_secret("vcu-level1") is None
    with pytest.raises(SecurityAccessError) as info:
        reg.compute_key(bytes(4), level, "VCU")
    assert "deadbeef" not in str(info.value).lower()


def test_vector_library_generate_key(vector_lib: Path) -> None:
    lib = SeedKeyLibrary(vector_lib)
    assert lib.has_options
    seed = bytes.fromhex("00000000a1b2c3d4")
    key = lib.generate_key(seed, 0x01)
    assert key == bytes(s ^ m for s, m in zip(seed, bytes.fromhex("5A3C9E11") * 2, strict=True))
    assert lib.generate_key(seed, 0x01, option=b"\x01")[0] == key[0] ^ 1
    with pytest.raises(SecurityAccessError, match="KGRE_SecurityLevelInvalid"):
        lib.generate_key(seed, 0x07)
    with pytest.raises(SecurityAccessError, match="KGRE_VariantInvalid"):
        lib.generate_key(seed, 0x01, variant="BAD")


def test_missing_library_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SecurityAccessError, match="does not exist"):
        SeedKeyLibrary(tmp_path / "nope.so")


def test_flash_with_vector_library(
    vector_lib: Path, can_channel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The technician trusts the folder the OEM's library was put in.
    monkeypatch.setenv("FOTA_STUDIO_SEEDKEY_DIRS", str(vector_lib.parent))
    sim_def = fast_ecu("VCU")
    tester_def = copy.deepcopy(sim_def)
    for lvl in tester_def.uds.security_levels:
        lvl.algorithm = f"vector:{vector_lib}"
        lvl.params = {}
        lvl.secret_ref = None  # the library holds its constants; no GenerateKeyExOpt option
    image = make_image("8.0.0", (0x800,))
    with fast_sim(sim_def, can_channel, tmp_path / "s") as sim:
        result = flash_image(tester_def, can_channel, image, expected_version="8.0.0")
        assert result.ok, result.error
        assert memory_matches(sim, image)
