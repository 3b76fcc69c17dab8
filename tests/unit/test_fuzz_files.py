"""Property-based and mutation fuzzing of every file reader (reliability/fuzz.py targets): HEX,
S-record, binary, format detection, packages (plus hostile zips), EA YAML, EDS and every trace
log format. Each input is loaded or rejected with a FotaError that has a message; nothing else
may escape, no input may take long, and nothing is written beside the input."""

from __future__ import annotations

import random
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fota_studio.core.errors import FotaError, PackageError
from fota_studio.core.package import read_package
from fota_studio.infra.tracefile import read_log
from reliability import fuzz

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, fuzz.Target]:
    folder = tmp_path_factory.mktemp("fuzz")
    return {t.name: t for t in fuzz.make_targets(folder)}


def _feed(target: fuzz.Target, data: bytes) -> None:
    stats = fuzz.TargetStats(target.name)
    fuzz.feed_one(target, data, stats)
    assert not stats.crashes, stats.crashes
    assert not stats.slow, stats.slow


FILE_TARGETS = ["intel_hex", "s_record", "binary", "detect+load", "package", "ea_yaml", "eds"]
TRACE_TARGETS = ["trace.asc", "trace.trc", "trace.csv", "trace.log"]


@pytest.mark.parametrize("name", FILE_TARGETS + TRACE_TARGETS)
@FUZZ
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_inputs_load_or_fail_cleanly(
    targets: dict[str, fuzz.Target], name: str, seed: int
) -> None:
    target = targets[name]
    rng = random.Random(seed)
    _feed(target, fuzz.mutate(rng.choice(target.seeds), rng))


@pytest.mark.parametrize("name", ["intel_hex", "s_record", "detect+load", "ea_yaml", "package"])
@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_load_or_fail_cleanly(
    targets: dict[str, fuzz.Target], name: str, data: bytes
) -> None:
    _feed(targets[name], data)


@FUZZ
@given(text=st.text(alphabet=":0123456789ABCDEFS\r\n ", max_size=400))
def test_record_like_text(targets: dict[str, fuzz.Target], text: str) -> None:
    for name in ("intel_hex", "s_record", "detect+load"):
        _feed(targets[name], text.encode())


def test_hostile_packages_are_rejected_with_a_reason(tmp_path: Path) -> None:
    kit = fuzz.package_kit()
    crafted = fuzz.crafted_packages(kit)
    assert len(crafted) >= 20
    before = set(tmp_path.iterdir())
    for label, data in crafted:
        with pytest.raises(PackageError) as info:
            read_package(data, source="evil.zip", trusted_keys=kit.trusted, require_signature=True)
        assert "evil.zip" in str(info.value), label
    assert set(tmp_path.iterdir()) == before  # nothing extracted anywhere


def test_zip_slip_member_is_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    kit = fuzz.package_kit()
    slip = dict(fuzz.crafted_packages(kit))["zip slip ../evil.hex"]
    with pytest.raises(PackageError, match="evil"):
        read_package(slip, source="slip.zip", trusted_keys=kit.trusted, require_signature=False)
    assert not (tmp_path.parent / "evil.hex").exists()
    assert list(tmp_path.iterdir()) == []


def test_compression_bomb_is_refused_without_inflating(tmp_path: Path) -> None:
    kit = fuzz.package_kit()
    crafted = dict(fuzz.crafted_packages(kit))
    for label in ("compression bomb", "lying size header"):
        data = crafted[label]
        assert len(data) < 2 << 20
        with zipfile.ZipFile(__import__("io").BytesIO(data)) as zf:
            assert "app.hex" in zf.namelist()
        with pytest.raises(PackageError):
            read_package(data, source="bomb.zip", trusted_keys=kit.trusted, require_signature=False)


def test_valid_seeds_load(targets: dict[str, fuzz.Target]) -> None:
    for target in targets.values():
        for seed in target.seeds:
            target.feed(seed)


def _blf_with_short_container(seed: bytes) -> bytes:
    data = bytearray(seed)
    idx = data.find(b"LOBJ", 144)  # first object after the 144-byte file header
    struct.pack_into("<L", data, idx + 8, 20)  # object size 20: a 4-byte container body
    return bytes(data)


def test_fuzz_campaign_small_counts_inputs() -> None:
    results = fuzz.run_campaign(3, seed=5)
    names = {r.name for r in results}
    assert {"package", "eds", "trace.blf"} <= names
    assert all(r.inputs >= 4 for r in results)


def test_blf_with_truncated_container_is_a_trace_file_error(
    targets: dict[str, fuzz.Target], tmp_path: Path
) -> None:
    bad = _blf_with_short_container(targets["trace.blf"].seeds[0])
    path = tmp_path / "short.blf"
    path.write_bytes(bad)
    with pytest.raises(FotaError):
        for _ in read_log(path):
            pass


BILLION_LAUGHS = "\n".join(
    ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    + ["name: x", "ecus: *a8"]
)


def test_ea_yaml_alias_bomb_is_rejected_quickly(tmp_path: Path) -> None:
    import subprocess
    import sys

    src = tmp_path / "laughs.yaml"
    src.write_text(BILLION_LAUGHS)
    code = (
        "import sys\n"
        "from fota_studio.core.ea_format import load_ea_yaml\n"
        "from fota_studio.core.errors import FotaError\n"
        "try:\n"
        f"    load_ea_yaml(open({str(src)!r}).read(), 'laughs.yaml')\n"
        "except FotaError:\n"
        "    sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], timeout=10, capture_output=True)
    except subprocess.TimeoutExpired:
        pytest.fail("loading a 1 KiB EA file with nested aliases did not finish in 10 s")
    assert proc.returncode == 0, proc.stderr[-400:]


def test_csv_with_out_of_range_id_is_a_trace_file_error(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text(
        "timestamp,arbitration_id,extended,remote,error,dlc,data\n"
        "1.0,0x1FFFFFFFFFFFFFFFFFFFF,1,0,0,2,AQI=\n"
    )
    with pytest.raises(FotaError):
        for _ in read_log(path):
            pass


def _small_blf(tmp_path: Path) -> bytes:
    import can

    path = tmp_path / "seed.blf"
    with can.BLFWriter(str(path)) as writer:
        for i in range(20):
            writer.on_message_received(
                can.Message(arbitration_id=0x100 + i, data=bytes([i] * 8), timestamp=1.0 + i)
            )
    return path.read_bytes()


@pytest.mark.parametrize(
    ("offset", "value", "what"),
    [
        (4, 8, "file header size smaller than the header"),
        (144 + 8, 4, "object size smaller than an object header"),
    ],
)
def test_blf_negative_lengths_are_trace_file_errors(
    tmp_path: Path, offset: int, value: int, what: str
) -> None:
    """Regression (make reliability, fuzz_crashes=2): sizes that made read() go negative."""
    import struct

    data = bytearray(_small_blf(tmp_path))
    header_size = struct.unpack_from("<L", data, 4)[0]
    if offset > 4:  # the first object follows the file header
        offset = header_size + 8
    struct.pack_into("<L", data, offset, value)
    path = tmp_path / "bad.blf"
    path.write_bytes(bytes(data))
    with pytest.raises(FotaError, match="damaged"):
        for _ in read_log(path):
            pass
    assert what
