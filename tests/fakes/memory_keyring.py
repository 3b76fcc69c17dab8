"""An in-process keyring backend (what a desktop's Secret Service provides), so a test that
stores secrets never touches the user's real keyring. Any thread."""

from __future__ import annotations

from keyring.backend import KeyringBackend


class MemoryKeyring(KeyringBackend):
    """A working keyring whose passwords live in `store`, keyed by (service, username)."""

    priority = 1

    def __init__(self) -> None:
        """An empty keyring."""
        super().__init__()  # type: ignore[no-untyped-call]
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        """The stored password, or None."""
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store (or replace) a password."""
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        """Forget a password (no error when there is none)."""
        self.store.pop((service, username), None)
