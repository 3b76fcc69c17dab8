"""ISO 14229-1 §7.5 NRC order of the simulated ECU, per service, with raw requests.

The general server response behaviour checks, in this order: service supported (0x11), service
supported in the active session (0x7F), minimum length (0x13), sub-function supported (0x12),
sub-function supported in the active session (0x7E), then what is specific to the service.
Each row sends a request that is wrong in several ways at once and expects the NRC of the
FIRST failing check, so a scanner learns what the ECU really supports where.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.fakes.uds_tester import Rig, ask, enter_bootloader, unlock_programming

# (request hex, expected answer hex) in the APPLICATION, default session then extended session.
APP_DEFAULT = [
    ("27", "7f277f"),  # a bare SecurityAccess: not in this session, never "wrong length"
    ("2701", "7f277f"),
    ("28", "7f287f"),
    ("2803", "7f287f"),
    ("85", "7f857f"),
    ("8507", "7f857f"),
    ("31", "7f317f"),
    ("31010203", "7f317f"),
    ("2ef15a00", "7f2e11"),  # the application has no WriteDataByIdentifier for the tester
    ("34", "7f3411"),
    ("36", "7f3611"),
    ("37", "7f3711"),
    ("99", "7f9911"),
    ("10", "7f1013"),
    ("1005", "7f1012"),
    ("100300", "7f1013"),  # sub-function fine, total length wrong
    ("1002", "7f1022"),  # programming only from the extended session
    ("11", "7f1113"),
    ("1109", "7f1112"),
    ("3e", "7f3e13"),
    ("3e01", "7f3e12"),
    ("3e0000", "7f3e13"),
    ("22", "7f2213"),
    ("22f1", "7f2213"),
    ("221234", "7f2231"),
    ("22f186", "62f18601"),  # active diagnostic session: default
    ("19", "7f1913"),
    ("1909ff", "7f1912"),
    ("1901", "7f1913"),
]
APP_EXTENDED = [
    ("27", "7f2713"),  # now supported in the session: the length is what is wrong
    ("2705", "7f2712"),  # level 5 is not configured
    ("2703", "7f2712"),  # the application only offers level 1
    ("270100", "7f2713"),  # requestSeed with data
    ("2702", "7f2724"),  # sendKey without a seed
    ("28", "7f2813"),
    ("2803", "7f2813"),
    ("280501", "7f2812"),
    ("280300", "7f2831"),  # communication type 0
    ("85", "7f8513"),
    ("8507", "7f8512"),
    ("31", "7f3113"),
    ("310102", "7f3113"),
    ("31050203", "7f3112"),
    ("3101ff00", "7f3131"),  # the erase routine exists only in the bootloader
    ("31010203", "7101020300"),  # check programming preconditions: ok
    ("22f186", "62f18603"),
]
# The BOOTLOADER, default session, then extended session.
BOOT_DEFAULT = [
    ("34", "7f347f"),  # the download services are not in the default session (before 0x13)
    ("340044", "7f347f"),
    ("36", "7f367f"),
    ("37", "7f377f"),
    ("2e", "7f2e7f"),
    ("2703", "7f277f"),
    ("31", "7f317f"),
    ("22f186", "62f18601"),
]
BOOT_EXTENDED = [
    ("2703", "7f277e"),  # the programming level: only in the programming session
    ("2704", "7f277e"),
    ("34", "7f347f"),
    ("36", "7f367f"),
    ("2e", "7f2e7f"),
    ("3101ff00", "7f317e"),  # the erase routine: only in the programming session
    ("3101ffff", "7f3131"),  # an unknown routine
    ("31010203", "7101020300"),
    ("22f186", "62f18603"),
]
# The BOOTLOADER, programming session with security unlocked.
BOOT_PROGRAMMING = [
    ("34", "7f3413"),
    ("36", "7f3613"),
    ("2ef15a", "7f2e13"),
    ("2e123400", "7f2e31"),  # only the fingerprint DID is writable
    ("3101ff01", "7f3113"),  # the check routine needs its checksum record
    ("3101ff01" + "00" * 4, "7f3124"),  # ... and a download before it
    ("340144", "7f3431"),  # compression/encryption not supported
    ("360100", "7f3624"),  # TransferData without RequestDownload
    ("37", "7f3724"),
    ("3700", "7f3713"),  # length before sequence
    ("31010203", "7101020300"),
    ("22f186", "62f18602"),
]


def _check(rig: Rig, table: list[tuple[str, str]]) -> None:
    got = [(req, (ask(rig.tester, bytes.fromhex(req)) or b"").hex()) for req, _ in table]
    assert got == table


def test_application_default_then_extended_session(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", mode="application")
    _check(rig, APP_DEFAULT)
    assert ask(rig.tester, bytes([0x10, 0x03]))[:2] == bytes([0x50, 0x03])  # type: ignore[index]
    _check(rig, APP_EXTENDED)


def test_bootloader_sessions(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU")
    enter_bootloader(rig)
    _check(rig, BOOT_DEFAULT)
    rig.tester.client.change_session(3)
    _check(rig, BOOT_EXTENDED)
    unlock_programming(rig)
    _check(rig, BOOT_PROGRAMMING)


def test_security_before_service_checks_in_programming(make_rig: Callable[..., Rig]) -> None:
    """Locked programming session: a well-formed download request answers 0x33."""
    rig = make_rig("VCU")
    enter_bootloader(rig)
    c = rig.tester.client
    c.change_session(3)
    c.unlock_security_access(1)
    c.change_session(2)
    request = bytes.fromhex("340044") + (0x10000).to_bytes(4, "big") + (0x100).to_bytes(4, "big")
    assert ask(rig.tester, request) == bytes.fromhex("7f3433")
    assert ask(rig.tester, bytes.fromhex("34")) == bytes.fromhex("7f3413")  # length first
    outside = bytes.fromhex("340044") + (0x200000).to_bytes(4, "big") + bytes.fromhex("00000100")
    assert ask(rig.tester, outside) == bytes.fromhex("7f3431")  # out of range before security
    boot = bytes.fromhex("340044") + (0x100).to_bytes(4, "big") + bytes.fromhex("00000100")
    assert ask(rig.tester, boot) == bytes.fromhex("7f3433")  # protected: 0x70, after security


def test_functional_request_suppresses_not_supported_nrcs(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("VCU", mode="application")
    conn = rig.tester.conn
    conn.empty_rxqueue()
    rig.tester.functional(bytes([0x27]))  # 0x7F to a functional request: no answer at all
    assert conn.wait_frame(timeout=0.3) is None
    rig.tester.functional(bytes([0x3E, 0x00]))
    assert bytes(conn.wait_frame(timeout=1)) == bytes([0x7E, 0x00])
