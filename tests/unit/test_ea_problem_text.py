"""EA problems name the ECU ("VCU: …"), not `ecus[0]`."""

from __future__ import annotations

from fota_studio.core.ea_problem_text import problem_text
from fota_studio.core.ea_validate import Problem, Severity, validate
from fota_studio.demo.catalog import demo_architecture


def test_problems_name_the_ecu() -> None:
    ea = demo_architecture()
    ea.ecus[1].uds.p2_timeout_ms = -5
    problems = [p for p in validate(ea) if p.path.startswith("ecus[1]")]
    assert problems
    text = problem_text(problems[0], ea)
    assert text.startswith(f"{ea.ecus[1].name}: uds.") and "ecus[" not in text
    dup = Problem("ecus[2].name", "also the name of ecus[0]", Severity.WARNING)
    assert problem_text(dup, ea) == (
        f"warning: {ea.ecus[2].name}: name: also the name of {ea.ecus[0].name}"
    )
    assert problem_text(Problem("ecus[9]", "x"), ea) == "ECU #10: x"
    assert problem_text(Problem("name", "empty"), None) == "name: empty"
