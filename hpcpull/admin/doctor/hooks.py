"""The router hooks and the schedd cron poller: configured, passing HTCondor's checks,
reachable by the job owners, and answering when run as one of them."""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence, Union

from hpcpull.admin.doctor.findings import FAIL, OK, WARN, DoctorBase, knob_list, tail
from hpcpull.admin.doctor.hook_files import behind_front_end, executable_problems, python_hook
from hpcpull.admin.doctor.owner_access import INSTALL_FIX, Account, as_command, hook_account, owner_problem
from hpcpull.config import ConfigError
from hpcpull.router.cadence import cadence
from hpcpull.router.protocol import MALFORMED_EXIT
from hpcpull.state.accounts import current_user

# (check name, HTCondor hook type) -- knobs <KEYWORD>_HOOK_<type> (JobRouterHookMgr).
HOOKS = (
    ("translate", "TRANSLATE_JOB"),
    ("update", "UPDATE_JOB_INFO"),
    ("finalize", "JOB_FINALIZE"),
    ("cleanup", "JOB_CLEANUP"),
)
KEYWORD = "HPCPULL"
POLLER = "HPCPULL"                # SCHEDD_CRON_JOBLIST entry of the poller (50-hpcpull.conf)


def cron_period(text: Optional[str]) -> Optional[float]:
    """A schedd cron period in seconds: a number with an optional unit s, m or h, as HTCondor
    reads SCHEDD_CRON_<Name>_PERIOD (CronJobParams::Initialize in
    src/condor_utils/condor_cron_job_params.cpp; the manual's "schedd cron" knobs)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", (text or "").lower())
    if not match:
        return None
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


class HookChecks(DoctorBase):
    """2. The hooks and the poller."""

    def check_hooks(self) -> None:
        keyword = (self.lookup("JOB_ROUTER_HOOK_KEYWORD") or "").strip()
        account = self._hook_account()
        runnable: list[tuple[str, str]] = []
        for short, kind in HOOKS:
            knob = f"{KEYWORD}_HOOK_{kind}"
            path = self.lookup(knob)
            if path is None and kind == "JOB_FINALIZE":
                knob = f"{KEYWORD}_HOOK_JOB_EXIT"  # the old name, read when JOB_FINALIZE is unset
                path = self.lookup(knob)
            if not path or not path.strip():
                self.add(FAIL, f"hook.{short}", f"{KEYWORD}_HOOK_{kind} is not set: the router runs no {kind} hook",
                         f"set {KEYWORD}_HOOK_{kind} = $(HPCPULL_BIN_DIR)/hpcpull-{short} (50-hpcpull.conf does)")
                continue
            path = path.strip()
            problems = executable_problems(path, f"the {kind} hook")
            for neighbour in behind_front_end(path):  # the Python hook and the slot gate it runs
                if not any(status == FAIL for status, _, _ in problems):
                    problems += executable_problems(neighbour, f"the {kind} hook's {os.path.basename(neighbour)}")
            if not any(status == FAIL for status, _, _ in problems) and account is not None:
                # HTCondor's checks are made as the router; the hook runs as the job owner.
                found = owner_problem(path, account)
                if found is not None:
                    problems = [(FAIL, *found)]  # what the owners meet replaces the mode-bit guesses
            for status, message, fix in problems:
                self.add(status, f"hook.{short}", f"{knob}: {message}", fix)
            if not any(status == FAIL for status, _, _ in problems):
                if not problems:
                    reach = f"; {account.name}, as the job owners, can reach it" \
                        if account is not None and account.uid != 0 else ""
                    self.add(OK, f"hook.{short}", f"{knob} = {path} passes HTCondor's checks{reach}")
                runnable.append((short, python_hook(path)))
        self._check_keyword(keyword)
        self._check_update_cadence()
        if runnable and account is not None:
            self._check_hooks_run(runnable, account)

    def _hook_account(self) -> Optional[Account]:
        """Who the hooks are checked as: ``--as-user`` or nobody; None (after a FAIL) for an
        account that does not exist."""
        try:
            return hook_account(self.hook_user)
        except KeyError:
            self.add(FAIL, "hook-run", f"--as-user {self.hook_user}: no such account",
                     "name an existing account, e.g. a user who submits jobs, or leave --as-user out (nobody)")
            return None

    def _check_keyword(self, keyword: str) -> None:
        """JobRouterHookMgr::getHookKeyword: the source job's HookKeyword, else JOB_ROUTER_HOOK_KEYWORD."""
        note = "a job's own HookKeyword attribute overrides it"
        if not keyword:
            self.add(WARN, "hook-keyword",
                     f'JOB_ROUTER_HOOK_KEYWORD is not set: only jobs with +HookKeyword = "{KEYWORD}" reach '
                     "hpcpull's hooks; other jobs routed to hpcpull's routes are copies that never run",
                     f"set JOB_ROUTER_HOOK_KEYWORD = {KEYWORD} (50-hpcpull.conf does; is it included?)")
        elif keyword.upper() == KEYWORD:
            self.add(OK, "hook-keyword", f"JOB_ROUTER_HOOK_KEYWORD = {keyword} ({note})")
        elif (self.lookup(f"{keyword}_HOOK_TRANSLATE_JOB") or "").strip() == \
                (self.lookup(f"{KEYWORD}_HOOK_TRANSLATE_JOB") or "").strip() != "":
            self.add(OK, "hook-keyword", f"JOB_ROUTER_HOOK_KEYWORD = {keyword}, whose hooks are hpcpull's ({note})")
        else:
            self.add(WARN, "hook-keyword",
                     f"JOB_ROUTER_HOOK_KEYWORD = {keyword}: jobs without their own HookKeyword get "
                     f"{keyword}_HOOK_* hooks, not hpcpull's {KEYWORD}_HOOK_*",
                     f'set JOB_ROUTER_HOOK_KEYWORD = {KEYWORD}, or have the jobs set +HookKeyword = "{KEYWORD}"')

    def _check_update_cadence(self) -> None:
        """HPCPULL_UPDATE_INTERVAL works through a second hook keyword (router/cadence.py)."""
        try:
            interval = self.config.gateway().update_interval_s
        except ConfigError:
            return  # reported with the other gateway knobs
        if interval <= 0:
            return
        chosen, why = cadence(self.config)
        if chosen is not None:
            self.add(OK, "update-interval", f"each routed job's UPDATE runs once per {chosen.interval_s} s, in a "
                     f"{chosen.window_s} s window of its own (HookKeyword {chosen.keyword} / {chosen.resting})")
            self._check_poller_may_wake()
        elif why:
            self.add(FAIL, "update-interval", why,
                     "keep the HPCPULL_RESTING_* lines of 50-hpcpull.conf, or set HPCPULL_UPDATE_INTERVAL = 0")
        else:
            self.add(OK, "update-interval", f"HPCPULL_UPDATE_INTERVAL = {interval} s is no longer than one "
                     "poll: an UPDATE at every poll")

    def _check_poller_may_wake(self) -> None:
        """The poller, run by the schedd as condor, marks other users' routed copies
        (state/wake.py): only a queue super user may edit them."""
        supers = {word.split("@")[0].lower() for word in re.split(r"[\s,]+", self.lookup("QUEUE_SUPER_USERS") or "")}
        if "condor" in supers:
            self.add(OK, "update-wake", "the poller (condor) may wake the UPDATE of jobs whose batch job has news "
                     "(QUEUE_SUPER_USERS)")
        else:
            self.add(WARN, "update-wake", "condor is not in QUEUE_SUPER_USERS: the poller cannot wake the UPDATE of "
                     "jobs whose batch job has news, so a change waits for the job's window (HPCPULL_UPDATE_INTERVAL)",
                     "add condor to QUEUE_SUPER_USERS (HTCondor's default: root, condor)")

    def _check_hooks_run(self, hooks: Sequence[tuple[str, str]], account: Account) -> None:
        """Run each hook on a blank line as ``account`` (this process's user when not root):
        hpcpull's hooks answer "malformed input" (TRANSLATE with exit 2, the others 0), or,
        run as root without HPCPULL_ALLOW_ROOT, refuse with exit 1 after reading the
        configuration: either way the interpreter, hpcpull and the configuration load for
        that user.  Behind a shell front end its ``-full`` Python hook is run directly: the
        front end would wait for one of the gateway's hook slots, all taken on a busy
        gateway, and its own files were checked above."""
        switch = os.geteuid() == 0 and account.uid != 0
        if switch:
            who = f"{account.label}, as the job owners run them"
            env = dict(self.hook_env, HOME=account.home, USER=account.name, LOGNAME=account.name)
            ids: dict[str, Any] = {"user": account.uid, "group": account.gid, "extra_groups": list(account.groups)}
        else:
            user = current_user()
            who = "root" if os.geteuid() == 0 else \
                f"{user}, the current user (only root can run them as {account.name}, standing for the job owners)"
            env, ids = dict(self.hook_env), {}

        def run(path: str) -> Union[subprocess.CompletedProcess, Exception]:
            try:
                return subprocess.run([path], input=b"\n", capture_output=True, env=env, cwd="/", timeout=60, **ids)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return exc

        with ThreadPoolExecutor(max_workers=len(hooks)) as pool:  # together: each starts a Python
            results = list(pool.map(run, [path for _, path in hooks]))
        answered: list[str] = []
        refused: list[str] = []
        for (short, path), proc in zip(hooks, results):
            if isinstance(proc, Exception):
                self.add(FAIL, "hook-run", f"{path} could not be run as {who}: {proc}",
                         f"run it by hand: echo | {as_command(account, switch)}{path}; {INSTALL_FIX}")
                continue
            stderr = proc.stderr.decode("utf-8", "replace")
            # the blank line sent is malformed input: a hook that answers so has started,
            # loaded hpcpull and read the configuration (router/protocol.py exit codes)
            if proc.returncode == MALFORMED_EXIT[short] and f"hpcpull {short}: malformed input" in stderr:
                answered.append(short)
            elif proc.returncode == 1 and f"hpcpull {short}: refusing to run as root" in stderr:
                refused.append(short)
            else:
                self.add(FAIL, "hook-run", f"{path} run as {who} exited {proc.returncode} for an empty input "
                                           f"(hpcpull's {short.upper()} exits {MALFORMED_EXIT[short]}): "
                                           f"{tail(stderr) or '(no output)'}",
                         f"run it by hand: echo | {as_command(account, switch)}{path}; an import or permission "
                         f"error means that user cannot load the interpreter or hpcpull: {INSTALL_FIX}")
        if answered:
            codes = "exit 2 for an empty input from translate, 0 from the others" if "translate" in answered \
                else "exit 0 for an empty input"
            self.add(OK, "hook-run", f"{', '.join(answered)} start and answer as {who} ({codes}, as expected)")
        if refused:
            self.add(OK, "hook-run", f"{', '.join(refused)} start and answer as {who} (it refuses to run as root, "
                                     "as expected: hooks run as the job owners; --as-user NAME runs them as NAME)")

    def check_poller(self) -> None:
        """The schedd cron poller (SCHEDD_CRON_HPCPULL_*): one status query per period for all users."""
        joblist = [w.upper() for w in knob_list(self.lookup("SCHEDD_CRON_JOBLIST"))]
        path = (self.lookup(f"SCHEDD_CRON_{POLLER}_EXECUTABLE") or "").strip()
        if not path:
            if POLLER in joblist:
                self.add(FAIL, "poller", f"SCHEDD_CRON_JOBLIST names {POLLER} but SCHEDD_CRON_{POLLER}_EXECUTABLE "
                                         "is not set", f"set SCHEDD_CRON_{POLLER}_EXECUTABLE = "
                                                       "$(HPCPULL_BIN_DIR)/hpcpull-poll")
            else:
                self.add(WARN, "poller", "the schedd cron poller is not configured: every user's hooks query the "
                                         "batch system for themselves, and the schedd ad has no HpcPull* status",
                         "keep the SCHEDD_CRON_JOBLIST / SCHEDD_CRON_HPCPULL_* lines of 50-hpcpull.conf")
            return
        problems = executable_problems(path, "the poller", runs_as="the condor user")
        for status, message, fix in problems:
            self.add(status, "poller", f"SCHEDD_CRON_{POLLER}_EXECUTABLE: {message}", fix)
        if POLLER not in joblist:
            self.add(WARN, "poller", f"SCHEDD_CRON_{POLLER}_EXECUTABLE is set but {POLLER} is not in "
                                     "SCHEDD_CRON_JOBLIST: the schedd never runs it",
                     f"SCHEDD_CRON_JOBLIST = $(SCHEDD_CRON_JOBLIST) {POLLER}, then condor_restart -schedd "
                     "(the list is read at start-up only)")
            return
        period = cron_period(self.lookup(f"SCHEDD_CRON_{POLLER}_PERIOD"))
        if period is not None and self.gateway is not None and period >= self.gateway.status_max_age_s:
            self.add(WARN, "poller", f"SCHEDD_CRON_{POLLER}_PERIOD ({period:g} s) is not below "
                                     f"HPCPULL_STATUS_MAX_AGE ({self.gateway.status_max_age_s:g} s): hooks query "
                                     "the batch system themselves between polls",
                     "make the period shorter than HPCPULL_STATUS_MAX_AGE")
            return
        if not problems:
            every = f" every {period:g} s" if period is not None else ""
            self.add(OK, "poller", f"the schedd runs {path}{every} (SCHEDD_CRON_JOBLIST has {POLLER})")
