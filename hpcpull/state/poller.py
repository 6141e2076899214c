"""The schedd cron poller: one batch status query per period for the whole gateway.

The schedd runs ``hpcpull-poll`` as the condor user every ``SCHEDD_CRON_HPCPULL_PERIOD``
(50-hpcpull.conf).  For each batch system that hpcpull's routes use it runs ONE bulk
status command (plus, for jobs that left the queue since the last poll, at most one
batched accounting query) and writes the shared status snapshot that every UPDATE hook
reads (status_cache.py): with N routed jobs of any number of users, the batch system
sees one status command per period.  Where the batch system hides other users' jobs
from the condor user (Slurm ``PrivateData=jobs``) a shared snapshot would be wrong, so
none is written and each user's hooks query their own jobs (one query per user per
period); the log says so.

Its stdout is the site status for the schedd ad (the cron ``PREFIX`` HpcPull is put in
front of each name): ``LrmsReachable``, ``LastSuccessfulPoll``, ``LastSuccessfulPollAge``,
``LastError``, ``StatusShared``, ``JobsIdle``/``JobsRunning`` and per route
``JobsIdle_<Route>``/``JobsRunning_<Route>``.  The same values are kept in
``<HPCPULL_STATUS_CACHE_DIR>/site-status.json`` for ``hpcpull status``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from hpcpull.config import Config, GatewaySettings, RouteSettings, lrms_command_environment
from hpcpull.errors import ConfigError, HpcPullError
from hpcpull.lrms import get_batch_system
from hpcpull.lrms.base import BatchJobStatus, BatchState, BatchSystem, LrmsError, one_line
from hpcpull.state import fast_index, wake
from hpcpull.state.accounts import service_uids, user_name
from hpcpull.state.atomicfile import ensure_shared_dir, write_atomically
from hpcpull.state.eventlog import write_event
from hpcpull.state.status_cache import SITE_STATUS, Snapshot, StatusCache
from hpcpull.state.submission import route_of_batch_job

# How long a job that left the queue stays in the snapshot with its final state (from
# accounting or from the last listing), so that the job's next UPDATE still finds it.
KEEP_FINISHED_S = 15 * 60
# How often to ask again whether the batch system hides other users' jobs (a config
# query, e.g. scontrol show config, not a status query).
PRIVACY_RECHECK_S = 3600


@dataclass
class SiteStatus:
    """What the poller found; published in the schedd ad and in site-status.json."""

    taken_at: float
    lrms: list[str]
    lrms_reachable: bool = True
    last_success: Optional[float] = None
    last_error: str = ""
    status_shared: bool = True
    jobs: dict[str, dict[str, int]] = field(default_factory=dict)  # route -> {"idle": n, "running": n}
    hides_jobs: dict[str, list[Any]] = field(default_factory=dict)  # lrms -> [hides?, checked at]

    def schedd_attributes(self, now: float) -> list[tuple[str, Any]]:
        """(name, value) pairs for the schedd ad, in a stable order."""
        attrs: list[tuple[str, Any]] = [
            ("LrmsReachable", self.lrms_reachable),
            ("LastSuccessfulPoll", int(self.last_success) if self.last_success else None),
            ("LastSuccessfulPollAge", int(now - self.last_success) if self.last_success else None),
            ("LastError", self.last_error),
            ("StatusShared", self.status_shared),
            ("Lrms", ",".join(self.lrms)),
            ("JobsIdle", sum(c["idle"] for c in self.jobs.values())),
            ("JobsRunning", sum(c["running"] for c in self.jobs.values())),
        ]
        for route in sorted(self.jobs):
            attrs += [(f"JobsIdle_{route}", self.jobs[route]["idle"]),
                      (f"JobsRunning_{route}", self.jobs[route]["running"])]
        return attrs


def format_cron_output(status: SiteStatus, now: float) -> str:
    """Old-ClassAd lines for the schedd cron (undefined values are left out), ending the ad."""
    import classad2

    lines = []
    for name, value in status.schedd_attributes(now):
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = classad2.quote(value.replace("\n", " ")[:1000])
        else:
            text = str(value)
        lines.append(f"{name} = {text}\n")
    return "".join(lines) + "-\n"


def read_site_status(directory: Path) -> Optional[SiteStatus]:
    try:
        data = json.loads((directory / SITE_STATUS).read_text(encoding="utf-8"))
        return SiteStatus(**data)
    except (OSError, ValueError, TypeError):
        return None


def _is_hpcpull_job(status: BatchJobStatus) -> bool:
    return status.name.startswith("hpcpull-")


def _carry_finished(previous: Optional[Snapshot], current: dict[str, BatchJobStatus],
                    batch: BatchSystem, now: float) -> None:
    """Keep hpcpull jobs that left the listing: final states from ONE accounting query."""
    if previous is None:
        return
    gone = {job_id: old for job_id, old in previous.jobs.items()
            if _is_hpcpull_job(old) and job_id not in current}
    newly_gone = [job_id for job_id, old in gone.items() if not old.state.is_terminal]
    final = batch.accounting_statuses(newly_gone) if newly_gone else {}
    for job_id, old in gone.items():
        if job_id in final:
            current[job_id] = final[job_id]
        elif old.state.is_terminal and (old.end_time or now) > now - KEEP_FINISHED_S:
            current[job_id] = old  # still useful to a late UPDATE
        # an active job that vanished without accounting: leave it out; UPDATE asks alone


def _count(jobs: dict[str, BatchJobStatus], counts: dict[str, dict[str, int]],
           routes: Optional[set[str]] = None) -> None:
    """Waiting/running batch jobs per route (only ``routes``, when given: this gateway's)."""
    for status in jobs.values():
        route = route_of_batch_job(status.name) if _is_hpcpull_job(status) else None
        if route is None or (routes is not None and route not in routes):
            continue
        slot = counts.setdefault(route, {"idle": 0, "running": 0})
        if status.state is BatchState.PENDING:
            slot["idle"] += 1
        elif status.state.is_active:
            slot["running"] += 1


def poll_once(config: Config, now: Optional[float] = None) -> SiteStatus:
    """Query every batch system the routes use, refresh the shared snapshots, return the site status."""
    now = time.time() if now is None else now
    gateway = config.gateway()
    check_status_dir(gateway.status_cache_dir)
    routes = [config.route(name) for name in gateway.route_names if config.route_exists(name)]
    systems = sorted({route.lrms for route in routes})
    previous_status = read_site_status(gateway.status_cache_dir)
    status = SiteStatus(taken_at=now, lrms=systems,
                        last_success=previous_status.last_success if previous_status else None)
    errors = []
    snapshots: dict[str, wake.Snapshot] = {}
    for name in systems:
        batch = get_batch_system(name, lrms_command_environment(gateway), gateway.command_timeout_s)
        cache = StatusCache(gateway.status_cache_dir, f"{batch.name}-status", gateway.status_max_age_s,
                            batch.bulk_status, clock=lambda: now, lock_wait=gateway.command_timeout_s + 5)
        try:
            if _hides_jobs(batch, previous_status, status, now):
                status.status_shared = False
                errors.append(f"{name} hides other users' jobs (e.g. PrivateData=jobs): each user's "
                              "hooks query their own jobs, one query per user per period")
                fast_index.invalidate(fast_index.index_dir(gateway.status_cache_dir, name))
                continue
            jobs = _refresh(batch, cache, status, now, {r.name for r in routes})
            entries = _update_index(gateway, name, jobs, now)
            if entries is not None:
                snapshots[name] = wake.Snapshot(entries, now)
        except LrmsError as exc:
            # Stored as a failed snapshot: hooks take it as "no news" and do not hammer a
            # dead controller with their own queries during this period.
            cache.store(Snapshot(now, False, str(exc)))
            fast_index.invalidate(fast_index.index_dir(gateway.status_cache_dir, name))
            status.lrms_reachable = False
            errors.append(f"{name}: {exc}")
    woken = _wake_changed(gateway, routes, snapshots, now, errors)
    if status.lrms_reachable and status.status_shared:
        status.last_success = now
    status.last_error = "; ".join(errors)
    for route in routes:
        status.jobs.setdefault(route.name, {"idle": 0, "running": 0})
    _save(gateway, status)
    write_event(gateway.log_path, gateway.max_log_bytes, "POLL", lrms=",".join(systems),
                reachable=status.lrms_reachable, shared=status.status_shared,
                idle=sum(c["idle"] for c in status.jobs.values()),
                running=sum(c["running"] for c in status.jobs.values()),
                woken=len(woken.wake) if woken else None, rested=len(woken.rest) if woken else None,
                error=status.last_error)
    return status


def _wake_changed(gateway: GatewaySettings, routes: Sequence[RouteSettings], snapshots: dict[str, wake.Snapshot],
                  now: float, errors: list[str]) -> Optional[wake.Wakes]:
    """With an UPDATE interval, wake the UPDATE of the routed jobs with news (state/wake.py)."""
    if gateway.update_interval_s <= 0 or not snapshots:
        return None
    try:
        return wake.wake_changed({route.name: route.lrms for route in routes}, snapshots, now)
    except Exception as exc:  # noqa: BLE001 - the bindings raise several kinds; the snapshot stands
        errors.append(f"waking the UPDATE of jobs with news failed ({type(exc).__name__}: {one_line(str(exc), 300)}); "
                      "they are updated in their windows (HPCPULL_UPDATE_INTERVAL) meanwhile; the poller "
                      "needs the local schedd, and its user (condor) in QUEUE_SUPER_USERS")
        return None


class StatusDirError(HpcPullError):
    """The status directory is missing or cannot take the poller's files (an admin must act)."""


def _user(uid: Optional[int] = None) -> str:
    """The name of ``uid`` (default: this process's user), for messages."""
    uid = os.geteuid() if uid is None else uid
    return user_name(uid) or f"uid {uid}"


def check_status_dir(directory: Path) -> None:
    """Make sure the snapshots can be written before asking the batch system anything.

    The directory is created (mode 1777) where this user may; otherwise -- the schedd runs
    the poller as condor, who usually cannot write its parent -- a StatusDirError says
    which directory and how to make it, rather than a traceback in the SchedLog.
    """
    make = (f"as root: mkdir -p {directory} && chmod 1777 {directory} (owner root, mode 1777: the poller and "
            "every job owner's hooks write there; HPCPULL_STATUS_CACHE_DIR names it)")
    try:
        ensure_shared_dir(directory)
        st = os.stat(directory)
    except OSError as exc:
        where = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
        raise StatusDirError(f"status directory {directory} does not exist and {_user()} cannot create it "
                             f"({where}); create it {make}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StatusDirError(f"status directory {directory} is not a directory; remove it and create it {make}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StatusDirError(f"status directory {directory} (mode {stat.S_IMODE(st.st_mode):04o}, owner "
                             f"{_user(st.st_uid)}) is not writable by {_user()}: chmod 1777 {directory} as root")


def _hides_jobs(batch: BatchSystem, previous: Optional[SiteStatus], status: SiteStatus, now: float) -> bool:
    """Whether ``batch`` hides other users' jobs; asked once per PRIVACY_RECHECK_S."""
    known = previous.hides_jobs.get(batch.name) if previous else None
    if known and now - float(known[1]) < PRIVACY_RECHECK_S:
        hides = bool(known[0])
        status.hides_jobs[batch.name] = known
    else:
        hides = batch.hides_other_users_jobs()
        status.hides_jobs[batch.name] = [hides, now]
    return hides


def _refresh(batch: BatchSystem, cache: StatusCache, status: SiteStatus, now: float,
             routes: set[str]) -> dict[str, BatchJobStatus]:
    previous = cache.read_shared()
    jobs = batch.bulk_status()
    _carry_finished(previous, jobs, batch, now)
    cache.store(Snapshot(now, True, "", jobs))
    _count(jobs, status.jobs, routes)
    return jobs


def _update_index(gateway: GatewaySettings, lrms: str, jobs: dict[str, BatchJobStatus],
                  now: float) -> Optional[dict[str, int]]:
    """The status index UPDATE's shell front end reads (fast_index.py): written by root or
    condor only, valid as long as the snapshot it comes from.  The entries written, or None
    when it was not written."""
    if not gateway.fast_update or os.getuid() not in service_uids():
        return None
    directory = fast_index.index_dir(gateway.status_cache_dir, lrms)
    ours = [job_id for job_id, status in jobs.items() if _is_hpcpull_job(status)]
    entries = fast_index.index_entries(jobs, ours)
    try:
        fast_index.write_entries(directory, entries, now, now + gateway.status_max_age_s)
    except OSError:
        fast_index.invalidate(directory)  # the front end then hands every poll to the full hook
        return None
    return entries


def _save(gateway: GatewaySettings, status: SiteStatus) -> None:
    try:
        ensure_shared_dir(gateway.status_cache_dir)
        write_atomically(gateway.status_cache_dir / SITE_STATUS, json.dumps(asdict(status)), mode=0o644)
    except OSError:
        pass  # the schedd ad still gets the status


def config_problem() -> Optional[str]:
    """Why the HTCondor configuration does not load, or None.

    htcondor2 ends the process that imports it (exit 1, its own lines on stderr) when a
    configuration file does not parse; a forked child tries first, so that the poller can
    say so in one line.
    """
    if "htcondor2" in sys.modules:
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its output goes into the pipe, its exit status tells
        code = 1
        try:
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            import htcondor2  # noqa: F401 - the import reads the configuration

            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported by the parent
            os.write(2, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace"))
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        said = pipe.read().decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    return f"the HTCondor configuration does not load: {one_line(said, 1500) or f'exit {code}'}"


def _failed(message: str) -> int:
    """One line for the SchedLog and a LastError for the schedd ad; exit status 1."""
    message = one_line(message, 2000)
    print(f"hpcpull poll: {message}", file=sys.stderr)
    try:
        import classad2

        quoted = classad2.quote(message)
    except Exception:  # noqa: BLE001 - the bindings themselves may be what failed
        quoted = '"' + message.replace("\\", "\\\\").replace('"', '\\"') + '"'
    sys.stdout.write(f"LrmsReachable = false\nLastError = {quoted}\n-\n")
    return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``hpcpull-poll`` (the schedd passes the cron job's name first: ignored).

    Every failure is one line on stderr (the schedd copies it into the SchedLog) and exit
    status 1, never a traceback."""
    try:
        problem = config_problem()
        if problem:
            raise ConfigError(f"{problem}; correct the file and line it names (condor_config_val -summary "
                              "shows what is read)")
        status = poll_once(Config())
    except HpcPullError as exc:
        return _failed(str(exc))
    except OSError as exc:
        return _failed(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    except Exception as exc:  # noqa: BLE001 - one line in the SchedLog, not a traceback
        return _failed(f"internal error: {type(exc).__name__}: {exc}")
    sys.stdout.write(format_cron_output(status, time.time()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
