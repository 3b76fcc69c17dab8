"""Thin adapters over python-can, can-isotp, udsoncan and canopen; library errors become ours.

Never imports Qt. Functions here are called from engine worker threads.
"""
