"""The adapters' pure command builders, and the facts each adapter class carries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hpcpull.config import SUPPORTED_LRMS
from hpcpull.errors import ConfigError
from hpcpull.lrms import BATCH_SYSTEMS, batch_system_class, get_batch_system
from hpcpull.lrms.base import BatchSystem
from hpcpull.lrms.lsf import LsfBatchSystem, bjobs_command, bjobs_format, bjobs_name_command, bkill_command
from hpcpull.lrms.pbs import PbsBatchSystem, PbsProBatchSystem, qdel_command, qstat_command
from hpcpull.lrms.sge import (
    QSTAT_ACTIVE,
    SgeBatchSystem,
    qacct_command,
    qacct_name_command,
    qstat_error_command,
)
from hpcpull.lrms.slurm import (
    SQUEUE_FORMAT,
    SlurmBatchSystem,
    sacct_command,
    sacct_name_command,
    scancel_command,
    scontrol_job_command,
    squeue_command,
)

W = Path("/w")


# --- Slurm ------------------------------------------------------------------------------


def test_slurm_commands() -> None:
    slurm = SlurmBatchSystem({})
    assert slurm.submit_command(W / "job.sh", "hp-1", W, W / "out") == [
        "sbatch", "--parsable", "--job-name=hp-1", "--chdir=/w", "--output=/w/out", "/w/job.sh"]
    assert slurm.submit_command(Path("-job.sh"), "hp-1", W, W / "out")[-1] == "./-job.sh"
    assert slurm.status_command() == squeue_command() == ["squeue", "-a", "-h", "-t", "all", "-o", SQUEUE_FORMAT]
    assert squeue_command("hp-1") == ["squeue", "-a", "-h", "-t", "all", "--name=hp-1", "-o", "%i"]
    assert slurm.cancel_command("17") == scancel_command("17") == ["scancel", "17"]
    assert scontrol_job_command("17") == ["scontrol", "show", "job", "-o", "17"]
    assert sacct_command(["17", "18"]) == [
        "sacct", "-a", "-X", "-n", "-P", "-j", "17,18", "-o", "JobID,JobName,State,ExitCode,Start,End"]
    assert sacct_name_command("hp-1") == [
        "sacct", "-a", "-X", "-n", "-P", "--name=hp-1", "--starttime=now-30days", "-o", "JobID"]


# --- PBS ----------------------------------------------------------------------------------


def test_pbs_commands() -> None:
    torque, pro = PbsBatchSystem({}), PbsProBatchSystem({})
    for pbs in (torque, pro):
        assert pbs.submit_command(W / "job.sh", "hp-1", W, Path("out")) == [
            "qsub", "-N", "hp-1", "-j", "oe", "-o", "/w/out", "/w/job.sh"]
        assert pbs.cancel_command("17.srv") == qdel_command("17.srv") == ["qdel", "17.srv"]
        assert pbs.submit_in_workdir and not pbs.submit_reads_stdin
    with pytest.raises(ValueError, match="output path"):
        torque.submit_command(W / "job.sh", "hp-1", W, Path("/w/host:out"))
    assert torque.status_command() == qstat_command() == ["qstat", "-f", "-1"]
    assert qstat_command("17") == ["qstat", "-f", "-1", "17"]
    assert pro.status_command() == qstat_command(history=True) == ["qstat", "-f", "-x"]
    assert qstat_command("17", history=True) == ["qstat", "-f", "-x", "17"]
    pro._history = False  # the server keeps no history
    assert pro.status_command() == ["qstat", "-f"]


# --- Grid Engine --------------------------------------------------------------------------


def test_sge_commands(tmp_path: Path) -> None:
    sge = SgeBatchSystem({})
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    assert sge.submit_command(script, "hp-1", W, W / "out") == [
        "qsub", "-terse", "-N", "hp-1", "-wd", "/w", "-o", "/w/out", "-j", "y", "-S", "/bin/bash", str(script)]
    script.write_text("#!/usr/bin/env bash\ntrue\n")  # not an absolute interpreter: no -S
    assert "-S" not in sge.submit_command(script, "hp-1", W, W / "out")
    with pytest.raises(ValueError, match="working directory"):
        sge.submit_command(script, "hp-1", Path("/w,x"), W / "out")
    assert sge.status_command() == list(QSTAT_ACTIVE) == ["qstat", "-u", "*", "-xml", "-g", "d", "-s", "prs"]
    assert sge.cancel_command("17.3") == ["qdel", "17.3"]
    assert qacct_command("17") == ["qacct", "-j", "17"]
    assert qacct_command("17.3") == ["qacct", "-j", "17", "-t", "3"]
    assert qacct_name_command("hp.1") == ["qacct", "-j", "hp.1"]
    assert qstat_error_command("17.3") == ["qstat", "-j", "17"]


# --- LSF ----------------------------------------------------------------------------------


def test_lsf_commands() -> None:
    lsf = LsfBatchSystem({})
    assert lsf.submit_command(W / "job.sh", "hp-1", W, W / "out") == [
        "bsub", "-J", "hp-1", "-cwd", "/w", "-o", "/w/out", "-e", "/w/out"]  # the script goes on stdin
    assert lsf.submit_reads_stdin and not lsf.submit_in_workdir
    assert lsf.status_command() == bjobs_command() == ["bjobs", "-u", "all", "-a", "-noheader", "-o", bjobs_format()]
    assert bjobs_command("17") == ["bjobs", "-a", "-noheader", "-o", bjobs_format(), "17"]
    assert bjobs_name_command("hp-1") == ["bjobs", "-u", "all", "-a", "-noheader", "-o", "jobid", "-J", "hp-1"]
    assert lsf.cancel_command("17") == bkill_command("17") == ["bkill", "17"]


# --- facts and the registry ---------------------------------------------------------------

BUILT = {
    "slurm": [squeue_command("x"), scontrol_job_command("1"), sacct_command(["1"]), ["scontrol", "show", "config"]],
    "pbs": [qstat_command()],
    "pbspro": [qstat_command(history=True)],
    "sge": [qacct_command("1"), qstat_error_command("1"), ["qconf", "-sconf", "global"]],
    "lsf": [bjobs_command("1"), bjobs_name_command("x")],
}


@pytest.mark.parametrize("lrms", SUPPORTED_LRMS)
def test_every_command_built_is_in_commands(lrms: str, tmp_path: Path) -> None:
    cls = batch_system_class(lrms)
    adapter = cls({})
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n")
    built = [adapter.submit_command(script, "hp-1", tmp_path, tmp_path / "out"), adapter.status_command(),
             adapter.cancel_command("1"), *BUILT[lrms]]
    assert {argv[0] for argv in built} == set(cls.commands)


@pytest.mark.parametrize("lrms", SUPPORTED_LRMS)
def test_facts_are_class_attributes(lrms: str) -> None:
    cls = batch_system_class(lrms)
    assert issubclass(cls, BatchSystem) and cls.name == lrms
    assert cls.commands and cls.environment_names and "{id}" in cls.inspect_commands
    assert cls.inspect_commands.format(id="17").count("17") == 2
    assert cls.step_launcher == ("srun" if lrms == "slurm" else "")
    assert isinstance(cls.queue_name_max, int) and 0 < cls.queue_name_max <= 64
    assert cls.format_walltime(3600)


def test_environment_names() -> None:
    names = {lrms: batch_system_class(lrms).environment_names for lrms in SUPPORTED_LRMS}
    assert names == {"slurm": ("SLURM_CONF",), "pbs": ("PBS_SERVER",), "pbspro": ("PBS_SERVER",),
                     "sge": ("SGE_ROOT", "SGE_CELL"), "lsf": ("LSF_ENVDIR",)}


def test_the_registry_is_the_list_of_supported_systems() -> None:
    assert SUPPORTED_LRMS == tuple(BATCH_SYSTEMS) == ("slurm", "pbs", "pbspro", "sge", "lsf")
    assert batch_system_class(" PBSPro ") is PbsProBatchSystem
    assert isinstance(get_batch_system("sge", {}), SgeBatchSystem)
    with pytest.raises(ConfigError, match="unknown batch system 'condor'"):
        batch_system_class("condor")


def test_config_imports_no_adapter() -> None:
    code = "import sys, hpcpull.config; print(sorted(m for m in sys.modules if m.startswith('hpcpull.lrms')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['hpcpull.lrms']"
