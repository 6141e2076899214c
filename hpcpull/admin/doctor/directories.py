"""The directories the hooks share: the scratch root, the status cache (with its snapshots
and the poller's site status) and the log directory, usable by hooks that run as the job
owners (hence mode 1777)."""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Optional

from hpcpull.admin import common
from hpcpull.admin.doctor.findings import FAIL, OK, WARN, DoctorBase, jobs_text, mode_text
from hpcpull.admin.doctor.hooks import POLLER
from hpcpull.state.accounts import service_uids
from hpcpull.state.status_cache import SITE_STATUS


class DirectoryChecks(DoctorBase):
    """5. The scratch roots, 7. the status cache, 8. the log directory."""

    def _scratch_check(self, root: Path) -> tuple[str, str, str]:
        fix_create = (f"mkdir -p {root} && chmod 1777 {root} on the shared filesystem, mounted at the same path "
                      "on the gateway and every compute node")
        try:
            st = os.stat(root)
        except OSError as exc:
            return FAIL, f"{root}: {exc.strerror}", fix_create
        if not stat.S_ISDIR(st.st_mode):
            return FAIL, f"{root} is not a directory", fix_create
        probe = root / f".hpcpull-doctor-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            return FAIL, f"{root} is not writable: {exc.strerror}", \
                f"make {root} writable (mounted read-write, mode 1777)"
        if stat.S_IMODE(st.st_mode) != 0o1777:
            return WARN, f"{root} has mode {mode_text(st)}, not 1777: hooks run as the job owners and create " \
                         f"{root}/<Owner> themselves", f"chmod 1777 {root}"
        return OK, f"{root} is a writable directory with mode 1777", ""

    def check_scratch(self) -> None:
        results: dict[Path, tuple[str, str, str]] = {}
        for name, route in self.routes.items():
            root = route.scratch_root
            if root not in results:
                results[root] = self._scratch_check(root)
            status, message, fix = results[root]
            self.scratch_ok[root] = status != FAIL
            self.add(status, f"scratch.{name}", message, fix)

    # ------------------------------------------------------------------ 7. status cache
    def check_status_cache(self) -> None:
        if self.gateway is None:
            return
        directory = self.gateway.status_cache_dir
        fix = f"mkdir -p {directory} && chmod 1777 {directory}"
        try:
            st = os.stat(directory)
        except OSError as exc:
            self.add(WARN, "status-cache", f"{directory}: {exc.strerror}; the first hook or poll creates it, "
                                           "with its own umask (so usually not 1777)", fix)
            return
        if not stat.S_ISDIR(st.st_mode):
            self.add(FAIL, "status-cache", f"{directory} is not a directory: status snapshots cannot be shared",
                     f"remove it, then {fix}")
            return
        if stat.S_IMODE(st.st_mode) != 0o1777:
            self.add(WARN, "status-cache", f"{directory} has mode {mode_text(st)}, not 1777: hooks of other users "
                                           "cannot keep their own snapshots and locks there", fix)
        else:
            self.add(OK, "status-cache", f"{directory} exists with mode 1777")
        for lrms in sorted({route.lrms for route in self.routes.values()}):
            self._check_snapshot(directory, lrms)
        self._check_site_status(directory)

    def _check_snapshot(self, directory: Path, lrms: str) -> None:
        from hpcpull.state.status_cache import Snapshot

        assert self.gateway is not None
        max_age = self.gateway.status_max_age_s
        candidates = [directory / f"{lrms}-status.json", *sorted(directory.glob(f"{lrms}-status.*.json"))]
        newest: Optional[tuple[Snapshot, Path]] = None
        for path in candidates:
            try:
                snap = Snapshot.from_json(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if newest is None or snap.taken_at > newest[0].taken_at:
                newest = (snap, path)
        name = f"status-cache.{lrms}"
        if newest is None:
            self.add(WARN, name, f"no {lrms} status snapshot in {directory}: neither the poller nor a hook has "
                                 "queried the batch system yet",
                     "check that the schedd runs the poller (SCHEDD_CRON_JOBLIST has HPCPULL; read at schedd "
                     "start-up only)")
            return
        snap, path = newest
        age = time.time() - snap.taken_at
        shared = path.name == f"{lrms}-status.json"
        try:
            owner = path.stat().st_uid
        except OSError:
            owner = 0
        if shared and owner not in service_uids():
            self.add(WARN, name, f"{path} is owned by uid {owner}: hooks trust only root's or condor's shared "
                                 "snapshot", f"remove {path}; the poller (running as condor) writes it again")
        elif age < 0:
            self.add(WARN, name, f"{path} was taken {common.age(-age, words=True)} in the future: clocks disagree",
                     "synchronise the gateway's clock (NTP)")
        elif age >= 2 * max_age:
            self.add(WARN, name, f"the newest snapshot ({path.name}) is {common.age(age, words=True)} old, more "
                                 f"than twice HPCPULL_STATUS_MAX_AGE ({max_age:g} s)",
                     "is the schedd cron poller running (SCHEDD_CRON_HPCPULL_*; condor_restart -schedd "
                     "after changing SCHEDD_CRON_JOBLIST)? Hooks refresh it only while jobs are routed")
        elif not snap.ok:
            self.add(WARN, name, f"the newest snapshot ({path.name}, {common.age(age, words=True)} old) is a failed "
                                 f"query: {snap.error}", "see the lrms check")
        else:
            self.add(OK, name, f"the newest snapshot ({path.name}) is {common.age(age, words=True)} old with "
                               f"{jobs_text(len(snap.jobs))} "
                               f"(HPCPULL_STATUS_MAX_AGE {max_age:g} s)")

    def _check_site_status(self, directory: Path) -> None:
        path = directory / SITE_STATUS
        if not path.exists():
            if (self.lookup(f"SCHEDD_CRON_{POLLER}_EXECUTABLE") or "").strip():
                self.add(WARN, "site-status", f"no {path}: the poller has not run yet",
                         "check that the schedd runs (condor_status -schedd) and started the poller "
                         "(SCHEDD_CRON_JOBLIST is read at schedd start-up only)")
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            taken_at = float(data["taken_at"])
            reachable = data.get("lrms_reachable")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.add(WARN, "site-status", f"{path} cannot be read: {exc}", "the poller rewrites it on its next run")
            return
        age = common.age(time.time() - taken_at, words=True)
        error = str(data.get("last_error") or "")
        if reachable is not True:
            self.add(WARN, "site-status", f"the poller found the batch system unreachable {age} ago: "
                                          f"{error or '(no error recorded)'}", "see the lrms check")
        elif data.get("status_shared") is False:
            self.add(WARN, "site-status", f"the poller ({age} ago) could not share one status query: {error}",
                     "let the condor user see all jobs (Slurm: PrivateData without 'jobs', or make condor an "
                     "operator)")
        else:
            jobs = data.get("jobs") or {}
            idle = sum(int(c.get("idle", 0)) for c in jobs.values() if isinstance(c, dict))
            running = sum(int(c.get("running", 0)) for c in jobs.values() if isinstance(c, dict))
            self.add(OK, "site-status", f"the poller found {', '.join(data.get('lrms') or []) or 'the batch system'} "
                                        f"reachable {age} ago ({idle} idle, {running} running hpcpull jobs)")

    # ------------------------------------------------------------------ 8. log, 9. user
    def check_log(self) -> None:
        if self.gateway is None:
            return
        if self.gateway.log_path is None:
            self.add(OK, "log", "HPCPULL_LOG is empty: no gateway log")
            return
        directory = self.gateway.log_path.parent
        fix = f"mkdir -p {directory} && chmod 1777 {directory}"
        try:
            st = os.stat(directory)
        except OSError as exc:
            self.add(WARN, "log", f"{directory} (HPCPULL_LOG's directory): {exc.strerror}; nothing is logged", fix)
            return
        if not stat.S_ISDIR(st.st_mode):
            self.add(WARN, "log", f"{directory} (HPCPULL_LOG's directory) is not a directory", fix)
        elif stat.S_IMODE(st.st_mode) != 0o1777:
            self.add(WARN, "log", f"{directory} has mode {mode_text(st)}, not 1777: hooks of ordinary users cannot "
                                  "write their HpcPullLog.<user> files", f"chmod 1777 {directory}")
        else:
            self.add(OK, "log", f"{directory} exists with mode 1777 (HPCPULL_LOG = {self.gateway.log_path})")
