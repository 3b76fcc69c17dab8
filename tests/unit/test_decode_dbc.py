"""DBC decoding through cantools: plain and multiplexed signals, unknown frames, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fota_studio.core.errors import ConfigurationError
from fota_studio.protocols.decode import Decoder

DBC = """VERSION ""

NS_ :

BS_:

BU_: ECU

BO_ 256 Engine: 8 ECU
 SG_ Speed : 0|16@1+ (0.1,0) [0|6553.5] "km/h" Vector__XXX
 SG_ Mux M : 16|8@1+ (1,0) [0|255] "" Vector__XXX
 SG_ Temp m0 : 24|8@1+ (1,-40) [-40|215] "degC" Vector__XXX
 SG_ Volt m1 : 24|8@1+ (0.1,0) [0|25.5] "V" Vector__XXX

BO_ 2566848753 HcuStatus: 8 ECU
 SG_ Pressure : 0|16@1+ (1,0) [0|65535] "bar" Vector__XXX
"""


@pytest.fixture
def decoder(tmp_path: Path) -> Decoder:
    path = tmp_path / "demo.dbc"
    path.write_text(DBC)
    dec = Decoder()
    assert dec.load_dbc(path) == 2
    return dec


def test_multiplexed_signals(decoder: Decoder) -> None:
    m0 = decoder.describe_frame(0x100, False, bytes([0xE8, 0x03, 0x00, 0x64, 0, 0, 0, 0]))
    assert m0 == "Engine: Speed=100.0 km/h, Mux=0, Temp=60 degC"
    m1 = decoder.describe_frame(0x100, False, bytes([0, 0, 0x01, 0x78, 0, 0, 0, 0]))
    assert "Volt=12.0 V" in m1 and "Temp" not in m1
    assert decoder.protocol(0x100, False, b"\x00" * 8) == "DBC"


def test_extended_id_and_unknown(decoder: Decoder) -> None:
    text = decoder.describe_frame(0x18FF00F1, True, bytes([0x10, 0x00] + [0] * 6))
    assert text == "HcuStatus: Pressure=16 bar"
    assert decoder.describe_frame(0x123, False, b"\x00") == ""


def test_bad_dbc_is_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dbc"
    bad.write_text("BO_ this is not a dbc")
    with pytest.raises(ConfigurationError, match=r"bad\.dbc"):
        Decoder().load_dbc(bad)
