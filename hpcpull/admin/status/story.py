"""One job's whole story (``hpcpull status JOB``): ``condor_ce_trace`` turned backwards,
from routing to cleanup, and where to look next."""

from __future__ import annotations

from typing import Any, Optional

from hpcpull.admin.common import clock
from hpcpull.admin.status.job import JobView, int_or_none, read_json, read_lines
from hpcpull.admin.status.survey import Survey
from hpcpull.admin.status.table import pairs, table
from hpcpull.state import jobdir as jd
from hpcpull.state.accounts import current_user
from hpcpull.state.eventlog import Event, Field, parse_finalize_note


def _inspect_commands(lrms: str, batch_job_id: Optional[str]) -> Optional[str]:
    """Where the job's batch system tells more about it (the adapter's ``inspect_commands``)."""
    from hpcpull.errors import ConfigError
    from hpcpull.lrms import batch_system_class

    if not batch_job_id:
        return None
    try:
        return batch_system_class(lrms).inspect_commands.format(id=batch_job_id)
    except ConfigError:  # a job directory of a batch system this version does not know
        return ""


def _staged(job: JobView) -> Optional[list[dict[str, Any]]]:
    data = read_json(job.control / jd.INPUT_MANIFEST) if job.control else None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        return None
    return [e for e in data["entries"] if isinstance(e, dict) and "name" in e]


def _returned(job: JobView, hook_log: list[str]) -> dict[str, Any]:
    """What FINALIZE returned: the FINISHED line's counts, hook.log's problems."""
    result: dict[str, Any] = {"count": None, "problems": [], "files": None}
    for event in job.events:
        if event.event == Event.FINISHED:
            if event.fields.get(Field.RETURNED):
                result["files"] = event.fields[Field.RETURNED].split(",")
                result["count"] = len(result["files"])
            if event.fields.get(Field.OUTPUT_ERRORS) and not result["problems"]:
                result["problems"] = [f"{event.fields[Field.OUTPUT_ERRORS]} output problem(s) "
                                      "(HpcPullOutputErrors)"]
    for line in hook_log:
        note = parse_finalize_note(line)
        if note is not None:
            count, problems = note
            if count is not None:
                result["count"] = count
            result["problems"] = problems
    return result


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def story(s: Survey, job: JobView) -> dict[str, Any]:
    """The whole story of one job as data; ``story_text`` prints it."""
    control = job.control
    hook_log = read_lines(control / jd.HOOK_LOG if control else None)
    paths = {}
    if control is not None:
        for label, name in (("batch_output", jd.BATCH_OUTPUT), ("stdout", jd.STDOUT), ("stderr", jd.STDERR),
                            ("hook_io", jd.HOOK_IO)):
            if label != "hook_io" or (control / name).is_dir():
                paths[label] = {"path": str(control / name), "exists": (control / name).exists()}
    exit_record = None
    if job.exit is not None:
        exit_record = {k: getattr(job.exit, k) for k in (
            "exit_code", "exit_signal", "start", "end", "wall_s", "user_cpu_s", "sys_cpu_s", "max_rss_kb")}
    finished = next((e.fields for e in reversed(job.events) if e.event == Event.FINISHED), None)
    return {
        "job": job.to_dict(s.now),
        "lrms_status": job.lrms_status.to_dict() if job.lrms_status else None,
        "lrms_error": job.lrms_error or None,
        "script": str(control / jd.BATCH_SCRIPT) if control else None,
        "script_exists": bool(control and (control / jd.BATCH_SCRIPT).exists()),
        "started": job.started,
        "log": [e.line for e in job.events],
        "hook_log": hook_log,
        "staged": _staged(job),
        "returned": _returned(job, hook_log),
        "exit": exit_record,
        "finished": finished,
        "look_next": paths,
        "ask_lrms": _inspect_commands(job.lrms, job.batch_job_id),
    }


def _exit_text(record: dict[str, Any]) -> list[str]:
    how = (f"killed by signal {record['exit_signal']}" if record.get("exit_signal") is not None
           else f"exit code {record.get('exit_code')}")
    out = [how]
    if "wall_s" in record:
        out.append(f"wall {float(record['wall_s']):.1f} s")
    if "user_cpu_s" in record:
        out.append(f"CPU {float(record['user_cpu_s']):.2f} s user + {float(record.get('sys_cpu_s', 0)):.2f} s sys")
    if record.get("max_rss_kb"):
        out.append(f"max RSS {int(record['max_rss_kb']) / 1024:.1f} MiB")
    return out


def story_text(s: Survey, job: JobView, data: dict[str, Any]) -> str:
    out = [f"Job {job.source_id}: {job.phase_text}"]
    rows = [
        ["source job", job.source_id],
        ["routed copy", job.copy_id or "? (not in the gateway log)"],
        ["route", job.route or "?"],
        ["owner", job.owner or "?"],
    ]
    where = {"present": "", "gone": " (removed by CLEANUP)", "kept": " (moved aside by CLEANUP)",
             "unreadable": f" (not readable as {current_user()})", "none": ""}[job.dir_state]
    if job.job_dir is None:
        refused = any(e.event == Event.REFUSED for e in job.events)
        where = "none (refused before staging)" if refused else "unknown (its ROUTED line is not in the log)"
    rows.append(["job directory", f"{job.job_dir}{where}" if job.job_dir else where])
    if job.kept_dir is not None:
        state = "" if job.dir_state == "kept" else " (gone)"
        rows.append(["kept for inspection", f"{job.kept_dir}{state}"
                     + (f": {job.kept_reason}" if job.kept_reason else "")])
    if job.batch_job_id:
        batch = f"{job.lrms or '?'} batch job {job.batch_job_id}"
        if job.lrms_status is not None:
            st = job.lrms_status
            batch += f": {st.native_state}" + (f", reason {st.reason}" if st.reason and st.reason != "None" else "")
            batch += f" ({job.lrms_status_from})"
        elif job.lrms_error:
            batch += f": {job.lrms_error}"
        else:
            batch += ": ? (not in the newest status snapshot; try --live)"
        rows.append(["batch system", batch])
    else:
        rows.append(["batch system", f"{job.lrms or '?'}, not submitted"])
    if data["script"]:
        rows.append(["batch script", data["script"] + ("" if data["script_exists"] else " (gone)")])
    if job.started:
        rows.append(["payload started", f"{clock(float(job.started.get('time', 0)))} on "
                     f"{job.started.get('host', '?')}"])
    out += pairs(rows)

    out.append("")
    out.append(f"Gateway log ({s.log_path}):" if s.log_path else "Gateway log: none (HPCPULL_LOG is empty)")
    out += [f"  {line}" for line in data["log"]] or ["  (no lines for this job)"]
    if job.control is not None:
        out.append("")
        out.append(f"Hook log ({job.control / jd.HOOK_LOG}):")
        out += [f"  {line}" for line in data["hook_log"]] or [f"  (none: the directory is {job.dir_state})"]
    staged = data["staged"]
    if staged is not None:
        out.append("")
        out.append(f"Files staged ({jd.INPUT_MANIFEST}):")
        out += ["  " + line for line in table(
            ["NAME", "TYPE", "SIZE"], [[e.get("name", "?"), e.get("type", "?"), _size(e.get("size"))] for e in staged],
            right=[2])] if staged else ["  (none)"]
    returned = data["returned"]
    if returned["count"] is not None or returned["problems"]:
        out.append("")
        head = "Files returned"
        if returned["count"] is not None:
            head += f": {returned['count']}"
        out.append(head + (" (" + ", ".join(returned["files"]) + ")" if returned["files"] else ""))
        out += [f"  problem: {p}" for p in returned["problems"]]
    record = data["exit"] or _finished_record(data["finished"])
    if record is not None:
        out.append("")
        source = "exit_status file" if data["exit"] else "FINISHED log line"
        out.append(f"Exit status ({source}): " + ", ".join(_exit_text(record)))
        if data["exit"]:
            out.append(f"  ran {clock(record['start'])} .. {clock(record['end'])}")
    out.append("")
    out.append("Where to look next:")
    next_rows = []
    if job.phase == "held" and job.hold_reason:
        next_rows.append(["hold reason", job.hold_reason])
    for label, name in (("batch_output", "batch system output"), ("stdout", "job stdout"), ("stderr", "job stderr"),
                        ("hook_io", "hook stdin/stdout")):
        if label in data["look_next"]:
            entry = data["look_next"][label]
            next_rows.append([name, entry["path"] + ("" if entry["exists"] else " (not there)")])
    if data["ask_lrms"]:
        next_rows.append([f"ask {job.lrms}", data["ask_lrms"]])
    if not next_rows:
        next_rows.append(["", "the gateway log lines above, and JobRouterLog"])
    out += pairs(next_rows)
    return "\n".join(out) + "\n"


def _finished_record(fields: Optional[dict[str, str]]) -> Optional[dict[str, Any]]:
    """The exit facts of the FINISHED log line, for a job whose exit_status file is gone."""
    if not fields:
        return None
    record: dict[str, Any] = {"exit_code": int_or_none(fields.get(Field.EXIT_CODE)),
                              "exit_signal": int_or_none(fields.get(Field.EXIT_SIGNAL))}
    for key in (Field.WALL_S, Field.USER_CPU_S, Field.SYS_CPU_S):
        if fields.get(key):
            record[key] = float(fields[key])
    if fields.get(Field.MEMORY_MB):
        record["max_rss_kb"] = int(float(fields[Field.MEMORY_MB]) * 1024)
    return record
