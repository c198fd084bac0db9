"""The environment under test is the locked one: what `make up`, `make test` and CI install."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints.txt"


def locked_versions() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin in {LOCK.name}: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in project["dependencies"] + extras["dev"] + extras["bench"]]


def test_every_installed_distribution_has_its_locked_version() -> None:
    pins = locked_versions()
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if canonicalize_name(d.metadata["Name"]) != "freshcache"
    }
    unlocked = sorted(set(installed) - set(pins))
    assert not unlocked, f"installed but not in {LOCK.name} (run `make lock`): {unlocked}"
    drifted = {n: (v, pins[n]) for n, v in installed.items() if v != pins[n]}
    assert not drifted, f"installed version differs from {LOCK.name} (installed, locked): {drifted}"


def test_the_project_asks_for_ranges_and_the_lock_satisfies_them() -> None:
    pins = locked_versions()
    for requirement in project_requirements():
        assert not any(s.operator == "==" for s in requirement.specifier), (
            f"pyproject.toml pins {requirement}: keep ranges there, exact versions in the lock"
        )
        locked = pins.get(canonicalize_name(requirement.name))
        assert locked is not None, f"{requirement.name} is missing from {LOCK.name}"
        assert requirement.specifier.contains(locked, prereleases=True), (requirement, locked)


def test_the_lock_excludes_the_prefect_whose_scheduler_breaks_on_sqlalchemy_2_1() -> None:
    pins = locked_versions()
    assert (pins["prefect"], pins["sqlalchemy"][:3]) != ("3.9.0", "2.1")
