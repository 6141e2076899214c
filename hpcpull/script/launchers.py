"""What starts the payload inside the batch job: plainly, or through srun, mpiexec, apptainer.

A route's ``HPCPULL_LAUNCHER`` is a chain of launcher names, each followed by its own
options, e.g.::

    HPCPULL_LAUNCHER = mpiexec --bind-to core apptainer --nv --bind /cvmfs

runs ``mpiexec -n <tasks> --bind-to core apptainer exec --nv --bind /cvmfs <image>
<executable> <arguments>``.  The words come from the admin; the image may come from the job
(``container_image``, i.e. ``ContainerImage``, or OSG's ``SingularityImage``) and the templates
quote every word.  hpcpull's own launcher.py (which records the exit status) always runs
first and wraps the whole chain, so the exit status is the chain's.

The chain runs in the batch job's own environment, never the job's: launcher.py sets the
job's variables with ``/usr/bin/env`` as the last step before the payload, where the payload
runs (inside the image, on every rank), as HTCondor's starter gives the job's environment to
the job process alone.  A job's LD_PRELOAD, APPTAINER_*/SINGULARITY_* or OMPI_MCA_* variables
therefore never reach the site's launchers.  The site's own variables reach the payload as
the launchers pass them on: srun and MPICH-style mpiexec pass their whole environment to the
tasks, Open MPI's to local ranks only (remote ones get what ``-x`` names), and
apptainer/singularity pass most of the host's environment into the container (not PATH, HOME or
LD_LIBRARY_PATH; nothing with ``--cleanenv`` or ``--containall``).  The job's variables and
those hpcpull sets (_CONDOR_*, credentials) are on the ``env`` command line, so they arrive
on every rank and in every container whatever the launchers' options.

The batch script finds each launcher that runs on the node (every one up to and including
the first container launcher) on its own PATH, after the site setup, and names it by that
absolute path.  A launcher after a container launcher runs inside the image and is named
bare, for the image to find.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Optional

from hpcpull.errors import ConfigError
from hpcpull.lrms import BATCH_SYSTEMS, batch_system_class

# name -> (command words before the options, whether it is a batch system's own step
# launcher: usable only where the route's adapter names it as its ``step_launcher``)
LAUNCHERS: dict[str, tuple[tuple[str, ...], bool]] = {
    "srun": (("srun",), True),              # Slurm's step launcher; takes the allocation's tasks
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
        _check_step_launcher(step.name, lrms, f"{knob}: ")


def _check_step_launcher(name: str, lrms: str, prefix: str = "") -> None:
    """A batch system's own step launcher (srun) only runs under that batch system.

    Imports the route's adapter only for a chain that names a step launcher.
    """
    if not LAUNCHERS[name][1] or batch_system_class(lrms).step_launcher == name:
        return
    owners = [n for n in BATCH_SYSTEMS if batch_system_class(n).step_launcher == name]
    raise ConfigError(
        f"{prefix}launcher {name} needs {' or '.join(owners) or 'a batch system that has it'}, "
        f"but the route's batch system is {lrms}"
    )


def uses_container(steps: tuple[LaunchStep, ...]) -> bool:
    return any(step.name in CONTAINER_LAUNCHERS for step in steps)


@dataclass(frozen=True)
class LaunchWords:
    """One launcher of the chain as the batch script writes it: a program, then its words."""

    program: str                  # srun, mpiexec, mpirun, apptainer or singularity
    arguments: tuple[str, ...]    # "exec", "-n <tasks>", the admin's options, the image
    on_node: bool                 # runs on the node, not inside a container: found on the script's PATH


def launch_chain(
    steps: tuple[LaunchStep, ...], lrms: str, total_tasks: int, image: Optional[str]
) -> list[LaunchWords]:
    """The chain's programs and their words, in order (unquoted: the template quotes them)."""
    chain: list[LaunchWords] = []
    on_node = True
    for step in steps:
        prefix = LAUNCHERS[step.name][0]
        _check_step_launcher(step.name, lrms)
        arguments = list(prefix[1:])
        if step.name in MPI_LAUNCHERS:
            arguments += ["-n", str(total_tasks)]
        arguments += step.options
        if step.name in CONTAINER_LAUNCHERS:
            if not image:
                raise ConfigError(f"launcher {step.name} needs an image (HPCPULL_CONTAINER_IMAGE)")
            arguments.append(image)
        chain.append(LaunchWords(prefix[0], tuple(arguments), on_node))
        if step.name in CONTAINER_LAUNCHERS:
            on_node = False  # what follows runs inside the image
    return chain


def launch_command(
    steps: tuple[LaunchStep, ...], lrms: str, total_tasks: int, image: Optional[str]
) -> list[str]:
    """The words placed before the payload's executable, programs by name (unquoted)."""
    return chain_words(launch_chain(steps, lrms, total_tasks, image))


def chain_words(chain: list[LaunchWords]) -> list[str]:
    """A chain as words, programs by name: what the script shows of it."""
    return [word for step in chain for word in (step.program, *step.arguments)]
