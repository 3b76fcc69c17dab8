"""`fota-studio ea ...`: Electronic Architectures and machines from the command line.

Sub-commands: list, show, validate, import, export, assign, machines. `validate` needs no
workspace: it reads a YAML file and prints every problem as `file:line: path: message` (exit 0
when valid, 1 otherwise). `import` refuses invalid files and replaces an existing EA only with
`--replace`. Errors are `FotaError`s that `cli.main` prints as one `error: ...` line. `import`
and `assign` change the workspace: with an admin passphrase set they need it (`--passphrase-stdin`
or a prompt), else exit 2 with "operator mode: ...". Main thread only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fota_studio.cli.common import (
    Command,
    add_group,
    arg,
    authorised_workspace,
    open_workspace,
    print_table,
    succeed,
)
from fota_studio.core.ea_format import EaFileError, LoadedEa, dump_ea_yaml, load_ea_file
from fota_studio.core.ea_validate import Problem, Severity, has_errors, validate
from fota_studio.core.errors import ArchitectureError
from fota_studio.infra.access import Action
from fota_studio.infra.ea_store import EaStore

EXIT_OK = 0
EXIT_PROBLEMS = 1


def register(subparsers: Any) -> None:
    """Add the `ea` command group to the top-level parser."""
    name = arg("name", metavar="NAME")
    file = arg("file", type=Path, metavar="FILE")
    add_group(
        subparsers,
        "ea",
        (
            Command("list", _cmd_list, "list the EAs in the workspace"),
            Command("show", _cmd_show, "print an EA as YAML", args=(name,)),
            Command(
                "validate",
                _cmd_validate,
                "check an EA file; exit 1 and list the problems if bad",
                args=(file,),
            ),
            Command(
                "import",
                _cmd_import,
                "import an EA file into the workspace",
                args=(
                    file,
                    arg("--replace", action="store_true", help="replace an EA of the same name"),
                ),
                changes_state=True,
            ),
            Command(
                "export",
                _cmd_export,
                "write an EA to a YAML file",
                args=(name, arg("--output", required=True, type=Path, metavar="FILE")),
            ),
            Command(
                "assign",
                _cmd_assign,
                "assign a machine to an EA (creates the machine if new)",
                args=(
                    arg("--machine", required=True, metavar="SERIAL", help='e.g. "Unit #1003"'),
                    arg("--ea", required=True, metavar="NAME", help="the EA name"),
                    arg("--name", default=None, help="a display name for the machine"),
                ),
                changes_state=True,
            ),
            Command(
                "machines", _cmd_machines, "list machines with their EA and installed versions"
            ),
        ),
        help="Electronic Architectures: list, show, validate, import, export; machines",
        description="An Electronic Architecture (EA) describes one machine type: its ECUs, "
        "how to reach them on CAN and how to program them.",
        dest="ea_command",
        metavar="<ea command>",
    )


def _print_problems(loaded: LoadedEa, problems: list[Problem]) -> None:
    # in file order, so the list reads top to bottom like the file
    for p in sorted(problems, key=lambda p: loaded.line_of(p.path) or 0):
        tag = "error" if p.severity is Severity.ERROR else "warning"
        print(f"{loaded.where(p.path)}: {tag}: {p.path}: {p.message}")


def _cmd_list(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        rows = [
            [s.name, s.machine_model, ", ".join(s.ecu_names), str(s.machines), s.updated_at]
            for s in EaStore(ws).list()
        ]
    if not rows:
        return succeed("no Electronic Architectures (import one with `fota-studio ea import FILE`)")
    print_table(["NAME", "MODEL", "ECUS", "MACHINES", "UPDATED"], rows)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        ea = EaStore(ws).get(args.name)
    sys.stdout.write(dump_ea_yaml(ea))
    return EXIT_OK


def _load(path: Path) -> LoadedEa | None:
    """Read a file; print its structural problems and return None when it is unreadable."""
    try:
        return load_ea_file(path)
    except EaFileError as exc:
        for line in exc.problems:
            print(line)
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return None


def _cmd_validate(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    if loaded is None:
        return EXIT_PROBLEMS
    problems = validate(loaded.ea)
    _print_problems(loaded, problems)
    if has_errors(problems):
        n = sum(p.severity is Severity.ERROR for p in problems)
        print(f"{args.file}: {n} error(s)", file=sys.stderr)
        return EXIT_PROBLEMS
    return succeed(f'{args.file}: EA "{loaded.ea.name}" is valid ({len(loaded.ea.ecus)} ECUs)')


def _cmd_import(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    if loaded is None:
        return EXIT_PROBLEMS
    with authorised_workspace(args, Action.EA_IMPORT) as ws:
        store = EaStore(ws)
        problems = validate(loaded.ea, store.known_repositories())
        _print_problems(loaded, problems)
        if has_errors(problems):
            print(f"{args.file}: not imported (fix the errors above)", file=sys.stderr)
            return EXIT_PROBLEMS
        if store.exists(loaded.ea.name) and not args.replace:
            raise ArchitectureError(
                f'an EA named "{loaded.ea.name}" already exists in the workspace',
                hint="add --replace to overwrite it",
            )
        store.save(loaded.ea, replace=True)
    return succeed(f'imported EA "{loaded.ea.name}" ({len(loaded.ea.ecus)} ECUs) from {args.file}')


def _cmd_export(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        ea = EaStore(ws).get(args.name)
    try:
        args.output.write_text(dump_ea_yaml(ea), encoding="utf-8", newline="\n")
    except OSError as exc:
        raise ArchitectureError(f"cannot write {args.output}: {exc.strerror}") from exc
    return succeed(f'exported EA "{ea.name}" to {args.output}')


def _cmd_assign(args: argparse.Namespace) -> int:
    with authorised_workspace(args, Action.EA_ASSIGN) as ws:
        m = EaStore(ws).assign(args.machine, args.ea, name=args.name)
    return succeed(f'machine "{m.serial}" is assigned to EA "{m.ea_name}"')


def _cmd_machines(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        machines = EaStore(ws).list_machines()
    if not machines:
        return succeed(
            "no machines (create one with `fota-studio ea assign --machine S --ea NAME`)"
        )
    rows = [
        [
            m.serial,
            m.name,
            m.ea_name or "-",
            ", ".join(f"{ecu}={v or 'unknown'}" for ecu, v in sorted(m.installed.items())) or "-",
        ]
        for m in machines
    ]
    print_table(["SERIAL", "NAME", "EA", "INSTALLED"], rows)
    return EXIT_OK
