"""Test doubles that are real protocol peers (an slcan adapter on a pseudo-terminal, ...)."""
