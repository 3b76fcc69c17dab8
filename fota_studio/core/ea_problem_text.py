"""EA validation problems as people read them: the ECU by its name, not by its list index.

`ea_validate` reports each problem at a field path of the EA file (`ecus[1].uds.timing…`), which
is what an editor or `file:line` needs; a person reading the EA editor's problem list wants
`HCU: uds.timing.reset_time_ms: …`. `problem_text` is that rendering. Pure; any thread.
"""

from __future__ import annotations

import re

from fota_studio.core.ea import ElectronicArchitecture
from fota_studio.core.ea_validate import Problem, Severity

_ECU_PATH = re.compile(r"^ecus\[(\d+)\]\.?")
_ECU_REF = re.compile(r"ecus\[(\d+)\]")


def problem_text(problem: Problem, ea: ElectronicArchitecture | None) -> str:
    """`warning: VCU: uds.p2_timeout_ms: …` — `ecus[i]` replaced by the ECU's name (also
    inside the message); unnamed or unknown ECUs read "ECU #i+1"."""

    def name(index: int) -> str:
        if ea is not None and 0 <= index < len(ea.ecus) and ea.ecus[index].name.strip():
            return ea.ecus[index].name.strip()
        return f"ECU #{index + 1}"

    path = problem.path
    m = _ECU_PATH.match(path)
    if m:
        rest = path[m.end() :]
        path = f"{name(int(m.group(1)))}: {rest}" if rest else name(int(m.group(1)))
    message = _ECU_REF.sub(lambda r: name(int(r.group(1))), problem.message)
    tag = "" if problem.severity is Severity.ERROR else "warning: "
    return f"{tag}{path}: {message}"
