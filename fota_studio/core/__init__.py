"""Pure domain layer: firmware images, Electronic Architectures, update requests, events, errors.

Imports nothing else of FOTA Studio and never Qt or a protocol library; safe from any thread.
"""
