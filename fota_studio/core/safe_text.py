"""Safe text for identifiers an operator compares by eye: firmware version strings.

A version is shown in lists, approval dialogs, the HMI and service reports, where an operator
decides "is this 3.2.1?". Unicode lets a hostile or careless package carry a look-alike:
"3.2.1" followed by a zero-width space (U+200B), a line separator (U+2028), a right-to-left
override (U+202E) that reverses what follows, or DEL. `check_version_text` therefore accepts,
after Unicode NFC normalisation, only the documented safe set:

    1 to 64 characters; the first a letter or digit; then letters A-Z a-z, digits 0-9 and
    . - + _ ~  (SemVer 2.0 "1.2.0-rc.1+build.5", "v2", "2024_03", "1.0~beta" all fit)

and refuses anything else with a message naming the character (code point and Unicode name)
and its position. Leading/trailing ASCII spaces and tabs are stripped first (a typing slip),
never other white space. Pure functions; safe from any thread.
"""

from __future__ import annotations

import re
import unicodedata

from fota_studio.core.errors import RepositoryError

VERSION_MAX_CHARS = 64
#: The characters a version may contain (documented above and in docs/SECURITY.md).
VERSION_ALLOWED_TEXT = "letters A-Z a-z, digits 0-9 and . - + _ ~"
_VERSION_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-+_~")
_FIRST = re.compile(r"[A-Za-z0-9]")


def describe_char(ch: str) -> str:
    """'U+200B ZERO WIDTH SPACE' for a character (a name even for control characters)."""
    name = unicodedata.name(ch, "")
    if not name:
        name = {"\x7f": "DELETE"}.get(ch, f"control character {unicodedata.category(ch)}")
    return f"U+{ord(ch):04X} {name}"


def check_version_text(value: str | None, *, what: str = "version") -> str:
    """The NFC-normalised version, or RepositoryError naming the first unsafe character."""
    text = unicodedata.normalize("NFC", value or "").strip(" \t")
    shown = ascii(text)  # invisible and bidirectional characters become visible escapes
    rule = f"a {what} uses only {VERSION_ALLOWED_TEXT}, starts with a letter or digit and has "
    rule += f"at most {VERSION_MAX_CHARS} characters"
    if not text:
        raise RepositoryError(f"{what} is empty", hint=f"give a {what}")
    if len(text) > VERSION_MAX_CHARS:
        raise RepositoryError(
            f"{what} {shown} is {len(text)} characters long (at most {VERSION_MAX_CHARS})",
            hint=rule,
        )
    for pos, ch in enumerate(text, start=1):
        if ch not in _VERSION_CHARS:
            raise RepositoryError(
                f"{what} {shown}: character {describe_char(ch)} at position {pos} is not "
                "allowed (it could make the version look like another one)",
                hint=rule,
            )
    if not _FIRST.match(text):
        raise RepositoryError(f"{what} {shown} must start with a letter or digit", hint=rule)
    return text
