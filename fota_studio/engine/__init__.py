"""Orchestration: per-bus workers, job queue, flash sequence, FOTA workflow, trace buffer.

Never imports Qt; emits frozen dataclass events to a sink callable.
"""
