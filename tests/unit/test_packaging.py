"""setup.cfg lists every package of the tree: setuptools installs only the packages it names,
so a subpackage missing there is missing from every installation (the hooks and the
``hpcpull`` command then fail to import it)."""

from __future__ import annotations

import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_setup_cfg_names_every_package_of_the_tree() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    listed = {line.strip() for line in config["options"]["packages"].splitlines() if line.strip()}
    in_tree = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "hpcpull").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert in_tree - listed == set(), "packages missing from setup.cfg [options] packages"
    # the data packages are mapped from the top-level templates/ and condor_config.d/
    assert listed - in_tree == {"hpcpull.data.templates", "hpcpull.data.condor_config"}
