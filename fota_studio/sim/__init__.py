"""Simulated machine: UDS bootloader ECUs, the TCU CANopen FOTA node, HMI and OEM clients.

Simulators are real protocol peers on a python-can bus; they never patch our own functions.
"""
