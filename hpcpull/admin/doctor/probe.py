"""``--probe-job``: one tiny batch job per route, rendered by the route's template, shows
that compute nodes see the scratch root (the file it writes appears on the gateway)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hpcpull.admin.doctor.findings import FAIL, OK, WARN, Check, DoctorBase, tail
from hpcpull.admin.doctor.routes import PROBE_FILE, sample_job_ad
from hpcpull.config import RouteSettings, lrms_command_environment
from hpcpull.errors import HpcPullError
from hpcpull.lrms.base import BatchState, LrmsError
from hpcpull.state.accounts import current_user


@dataclass
class _Probe:
    """One probe job in flight: where it writes, what the batch system last said of it, and
    the finding once there is one."""

    route: RouteSettings
    directory: Path
    batch: Any
    job_id: str = ""
    started: float = field(default_factory=time.monotonic)
    waiting: bool = True           # the batch system last said the job waits to start
    last_state: str = ""           # its native state, for messages
    last_reason: str = ""
    grace_until: Optional[float] = None
    result: Optional[Check] = None


class ProbeChecks(DoctorBase):
    """The probe jobs (after the scratch checks, whose results they need)."""

    def check_probe_jobs(self) -> None:
        """Submit one tiny job per route through its template; wait for the file it writes."""
        if self.gateway is None:
            return
        probes: list[_Probe] = []
        for name, route in self.routes.items():
            if name not in self.rendered or not self.scratch_ok.get(route.scratch_root):
                self.add(FAIL, f"probe.{name}", "no probe job: the route's template or scratch root failed above",
                         "fix those first")
                continue
            probes.append(self._submit_probe(route))
        deadline = time.monotonic() + self.probe_timeout
        try:
            while any(p.result is None for p in probes) and time.monotonic() < deadline:
                for probe in probes:
                    if probe.result is None:
                        self._poll_probe(probe)
                if any(p.result is None for p in probes):
                    time.sleep(0.5)
            for probe in probes:
                if probe.result is None:
                    probe.result = self._probe_timed_out(probe)
        finally:
            for probe in probes:
                self._cleanup_probe(probe)
        for probe in probes:
            assert probe.result is not None
            self.results.append(probe.result)

    def _submit_probe(self, route: RouteSettings) -> _Probe:
        from hpcpull.lrms import get_batch_system
        from hpcpull.node import launcher
        from hpcpull.router.classads import format_ad
        from hpcpull.script.render import render_batch_script
        from hpcpull.state import jobdir

        assert self.gateway is not None
        token = secrets.token_hex(4)
        # A name no Owner can have (owners never start with "."): never a real job's directory.
        directory = route.scratch_root / f".hpcpull-doctor-{route.name}-{token}"
        batch = get_batch_system(route.lrms, lrms_command_environment(self.gateway), self.gateway.command_timeout_s)
        probe = _Probe(route, directory, batch)
        walltime = min(300, route.max_walltime_s or 300)
        try:
            control = jobdir.JobDir(directory).control
            control.mkdir(mode=0o755, parents=True)
            directory.chmod(0o755)
            ad = sample_job_ad(current_user(), walltime_s=walltime)
            shutil.copyfile(launcher.__file__, control / jobdir.LAUNCHER)
            (control / jobdir.JOB_AD).write_text(format_ad(ad), encoding="utf-8")
            script = control / jobdir.BATCH_SCRIPT
            script.write_text(render_batch_script(ad, route, directory), encoding="utf-8")
            script.chmod(0o700)
            probe.job_id = batch.submit(script, f"hpcpull-doctor-{token}", directory,
                                        control / jobdir.BATCH_OUTPUT)
        except LrmsError as exc:
            as_root = " (batch systems often refuse root's jobs: run the probe as a user who may submit)" \
                if os.geteuid() == 0 else ""
            probe.result = Check(FAIL, f"probe.{route.name}", f"{route.lrms} refused the probe job: {exc}"
                                 + (f"; stderr: {tail(exc.stderr)}" if exc.stderr else ""),
                                 "check the route's partition/account knobs against the batch system" + as_root)
        except (OSError, HpcPullError, ValueError) as exc:
            probe.result = Check(FAIL, f"probe.{route.name}", f"could not prepare the probe job in {directory}: "
                                                              f"{exc}", "see the scratch and template checks")
        probe.started = time.monotonic()
        return probe

    def _poll_probe(self, probe: _Probe) -> None:
        from hpcpull.state import jobdir

        name = f"probe.{probe.route.name}"
        marker = probe.directory / PROBE_FILE
        exit_file = jobdir.JobDir(probe.directory).file(jobdir.EXIT_STATUS)
        if marker.exists() and exit_file.exists():
            host = marker.read_text(encoding="utf-8", errors="replace").strip() or "a compute node"
            try:
                record = json.loads(exit_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = {}
            took = time.monotonic() - probe.started
            if record.get("exit_code") == 0:
                probe.result = Check(OK, name, f"batch job {probe.job_id} ran on {host} and wrote into "
                                               f"{probe.directory} within {took:.0f} s: compute nodes see the "
                                               "scratch root")
            else:
                probe.result = Check(FAIL, name, f"batch job {probe.job_id} ran on {host} but the payload ended "
                                                 f"with {record}", "see the probe's .hpcpull/stderr")
            return
        try:
            status = probe.batch.job_status(probe.job_id)
        except LrmsError:
            return  # try again until the deadline
        if status is None:
            if time.monotonic() - probe.started < 10:
                return  # not listed yet
            probe.result = self._probe_failed(probe, "is unknown to the batch system")
            return
        probe.last_state, probe.last_reason = status.native_state, status.reason
        probe.waiting = status.state is BatchState.PENDING
        if status.state.is_terminal:
            # The files may still be on their way over the shared filesystem: a short grace period.
            if probe.grace_until is None:
                probe.grace_until = time.monotonic() + 5
            elif time.monotonic() > probe.grace_until:
                probe.result = self._probe_failed(probe, f"ended ({status.native_state})")

    def _probe_failed(self, probe: _Probe, what: str) -> Check:
        from hpcpull.state import jobdir

        batch_out = jobdir.JobDir(probe.directory).file(jobdir.BATCH_OUTPUT)
        name = f"probe.{probe.route.name}"
        partition = f" of partition {probe.route.partition}" if probe.route.partition else ""
        if batch_out.exists():
            text = batch_out.read_text(encoding="utf-8", errors="replace")
            return Check(FAIL, name, f"batch job {probe.job_id} {what} without writing {PROBE_FILE}; its "
                                     f"batch.out says: {tail(text) or '(empty)'}",
                         "the script started on the compute node but failed: check HPCPULL_PYTHON and "
                         "HPCPULL_ENVIRONMENT_SETUP there")
        return Check(FAIL, name, f"batch job {probe.job_id} {what} and nothing appeared in {probe.directory} "
                                 "(not even the batch system's output file)",
                     f"is {probe.route.scratch_root} mounted at the same path on the compute nodes{partition}, "
                     "writable by the job owners?")

    def _probe_timed_out(self, probe: _Probe) -> Check:
        name = f"probe.{probe.route.name}"
        waited = f"{self.probe_timeout:g} s"
        if probe.waiting:
            reason = f" (reason: {probe.last_reason})" if probe.last_reason else ""
            return Check(WARN, name, f"batch job {probe.job_id} still waited to start after {waited}{reason}; "
                                     "cancelled, so compute node access is unknown",
                         "run again with a longer --probe-timeout, when the partition has free nodes")
        return Check(FAIL, name, f"batch job {probe.job_id} ({probe.last_state}) wrote no {PROBE_FILE} into "
                                 f"{probe.directory} within {waited}",
                     f"is {probe.route.scratch_root} mounted at the same path on the compute nodes?")

    def _cleanup_probe(self, probe: _Probe) -> None:
        if probe.job_id:
            try:
                probe.batch.cancel(probe.job_id)
            except (LrmsError, ValueError):
                pass  # best effort: the job is tiny and its walltime short
        shutil.rmtree(probe.directory, ignore_errors=True)
