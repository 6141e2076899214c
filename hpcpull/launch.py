"""What starts the payload inside the batch job: plainly, or through srun, mpiexec, apptainer.

A route's ``HPCPULL_LAUNCHER`` is a chain of launcher names, each followed by its own
options, e.g.::

    HPCPULL_LAUNCHER = mpiexec --bind-to core apptainer --nv --bind /cvmfs

runs ``mpiexec -n <tasks> --bind-to core apptainer exec --nv --bind /cvmfs <image>
<executable> <arguments>``.  The words come from the admin; the image may come from the job
(``container_image``, i.e. ``ContainerImage``, or OSG's ``SingularityImage``) and the templates
quote every word.  hpcpull's own launcher.py (which records the exit status) always runs
first and wraps the whole chain, so the exit status is the chain's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Optional

from .errors import ConfigError

# name -> (command words before the options, whether the LRMS must be Slurm)
LAUNCHERS: dict[str, tuple[tuple[str, ...], bool]] = {
    "srun": (("srun",), True),              # Slurm's own step launcher; takes the allocation's tasks
    "mpiexec": (("mpiexec",), False),       # + "-n <tasks>"
    "mpirun": (("mpirun",), False),         # + "-n <tasks>"
    "apptainer": (("apptainer", "exec"), False),    # + options + image
    "singularity": (("singularity", "exec"), False),
}
CONTAINER_LAUNCHERS = frozenset({"apptainer", "singularity"})
MPI_LAUNCHERS = frozenset({"mpiexec", "mpirun"})


@dataclass(frozen=True)
class LaunchStep:
    """One launcher of the chain with the admin's options for it."""

    name: str
    options: tuple[str, ...] = ()


def parse_launcher(knob: str, raw: str) -> tuple[LaunchStep, ...]:
    """``HPCPULL_LAUNCHER`` as steps; empty or ``plain`` means no launcher."""
    try:
        words = shlex.split(raw)
    except ValueError as exc:
        raise ConfigError(f"{knob} = {raw!r}: {exc}") from None
    steps: list[LaunchStep] = []
    for word in words:
        if word in LAUNCHERS:
            steps.append(LaunchStep(word))
        elif word == "plain" and not steps and len(words) == 1:
            return ()
        elif steps:
            last = steps[-1]
            steps[-1] = LaunchStep(last.name, last.options + (word,))
        else:
            known = ", ".join(["plain", *LAUNCHERS])
            raise ConfigError(f"{knob} = {raw!r}: {word!r} is not a launcher (known: {known})")
    return tuple(steps)


def check_launcher(knob: str, steps: tuple[LaunchStep, ...], lrms: str) -> None:
    """Refuse at configuration time a chain the route's batch system cannot run."""
    for step in steps:
        if LAUNCHERS[step.name][1] and lrms != "slurm":
            raise ConfigError(f"{knob}: launcher {step.name} needs Slurm, but the route's batch system is {lrms}")


def uses_container(steps: tuple[LaunchStep, ...]) -> bool:
    return any(step.name in CONTAINER_LAUNCHERS for step in steps)


def launch_command(
    steps: tuple[LaunchStep, ...], lrms: str, total_tasks: int, image: Optional[str]
) -> list[str]:
    """The words placed before the payload's executable (unquoted: the template quotes them)."""
    words: list[str] = []
    for step in steps:
        prefix, slurm_only = LAUNCHERS[step.name]
        if slurm_only and lrms != "slurm":
            raise ConfigError(f"launcher {step.name} needs Slurm, but the route's batch system is {lrms}")
        words += prefix
        if step.name in MPI_LAUNCHERS:
            words += ["-n", str(total_tasks)]
        words += step.options
        if step.name in CONTAINER_LAUNCHERS:
            if not image:
                raise ConfigError(f"launcher {step.name} needs an image (HPCPULL_CONTAINER_IMAGE)")
            words.append(image)
    return words
