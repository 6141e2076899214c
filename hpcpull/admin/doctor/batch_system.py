"""The batch systems the routes use: their client commands are on the batch command PATH
and answer one bulk status query."""

from __future__ import annotations

import os
import shlex
import shutil
import time

from hpcpull.admin.doctor.findings import FAIL, OK, DoctorBase, jobs_text, tail
from hpcpull.config import lrms_command_environment
from hpcpull.lrms.base import LrmsError


class BatchSystemChecks(DoctorBase):
    """6. The batch systems."""

    def check_lrms(self) -> None:
        from hpcpull.lrms import batch_system_class, get_batch_system

        if self.gateway is None:
            return
        env = lrms_command_environment(self.gateway)
        path = env.get("PATH", "")
        for lrms in sorted({route.lrms for route in self.routes.values()}):
            # every client command the adapter runs: a missing one breaks submit, status,
            # cancel or the accounting fallback
            adapter = batch_system_class(lrms)
            commands = adapter.commands
            # the variables that tell the client which cluster to talk to, for the messages
            where = ", ".join(f"{n}={env[n]}" for n in adapter.environment_names if n in env)
            found = {c: shutil.which(c, path=path) for c in commands}
            missing = [c for c, p in found.items() if p is None]
            if missing:
                self.add(FAIL, f"commands.{lrms}", f"{', '.join(missing)} not found in the batch command PATH "
                                                   f"({path})",
                         f"install the {lrms} client commands on the gateway, or add their directory to "
                         "HPCPULL_LRMS_ENVIRONMENT (PATH=...)")
            else:
                dirs = sorted({os.path.dirname(p) for p in found.values() if p})
                self.add(OK, f"commands.{lrms}", f"{', '.join(commands)} found in {', '.join(dirs)}")
            batch = get_batch_system(lrms, env, self.gateway.command_timeout_s)
            started = time.monotonic()
            try:
                jobs = batch.bulk_status()
            except LrmsError as exc:
                # stderr lines the one-line message does not already say
                stderr = tail("\n".join(line for line in exc.stderr.splitlines()
                                         if line.strip() and line.strip().split(": ")[-1] not in str(exc)))
                kind = "the batch system did not answer" if exc.transient else "the status command failed"
                self.add(FAIL, f"lrms.{lrms}", f"{exc}" + (f"; stderr: {stderr}" if stderr else "")
                         + (f" ({where})" if where else ""),
                         f"{kind}: is the controller up and does the batch command environment reach it "
                         f"(HPCPULL_LRMS_ENVIRONMENT, e.g. SLURM_CONF=...; HPCPULL_COMMAND_TIMEOUT = "
                         f"{self.gateway.command_timeout_s:g} s)? Run `{shlex.join(exc.command)}` as condor")
                continue
            took = time.monotonic() - started
            self.add(OK, f"lrms.{lrms}", f"one bulk status query answered in {took:.1f} s: {jobs_text(len(jobs))} "
                                         "visible" + (f" ({where})" if where else ""))
