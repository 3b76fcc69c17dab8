"""Reliability campaign of FOTA Studio: fault matrix, fuzzing, soak and crash-durability scripts.

Each module is a script (`python -m reliability.<name>`) whose functions the CI-sized tests in
tests/unit/test_reliability_*.py, test_fuzz_*.py and test_security_*.py import. `make reliability`
runs `reliability.campaign`, which prints every table and figure and ends with one JSON line.
Called from the main thread of a script or a test.
"""
