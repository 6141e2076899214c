"""The job list of ``hpcpull status``: the site status, then one line per job in aligned
columns, then the counts per route and phase (as ``condor_router_q -S`` prints ``JOBS ST
Route``; htcondor/htcondor src/condor_job_router/condor_router_q); or the same as JSON."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from hpcpull.admin.common import age, clock
from hpcpull.admin.status.job import PHASES, JobView
from hpcpull.admin.status.survey import Survey
from hpcpull.state.status_cache import Snapshot

NO_SITE_STATUS = "no site status yet (is the schedd cron poller configured?)"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """Aligned columns, two blanks apart; the last column is never padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return _aligned(widths, headers, rows, right)


def pairs(rows: Sequence[Sequence[str]], width: int = 20) -> list[str]:
    """"label  value" lines, labels padded to ``width`` so that every section lines up."""
    widths = [max(width, *(len(r[0]) for r in rows)), 0]
    return ["  " + line for line in _aligned(widths, ["", ""], rows, ())[1:]]


def _aligned(widths: Sequence[int], headers: Sequence[str], rows: Sequence[Sequence[str]],
             right: Sequence[int]) -> list[str]:
    lines = []
    for row in [headers, *rows]:
        cells = []
        for i, cell in enumerate(row):
            text = str(cell)
            if i == len(row) - 1:
                cells.append(text.rjust(widths[i]) if i in right else text)
            else:
                cells.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return lines


def _yes_no(value: Any) -> str:
    return "?" if value is None else ("yes" if value else "no")


def site_status_lines(site: Optional[dict[str, Any]], now: float, route: Optional[str]) -> list[str]:
    if site is None:
        return [f"Site status: {NO_SITE_STATUS}"]
    taken = site.get("taken_at")
    last = site.get("last_success")
    head = "Site status"
    if isinstance(taken, (int, float)):
        head += f" (poller ran {clock(taken)}, {age(now - taken)} ago)"
    lrms = site.get("lrms") or []
    out = [head + ":"]
    rows = [
        ["LRMS reachable", _yes_no(site.get("lrms_reachable"))
         + (f" ({', '.join(map(str, lrms))})" if lrms else "")],
        ["last successful poll", f"{clock(last)} ({age(now - last)} ago)"
         if isinstance(last, (int, float)) else "never"],
        ["last error", str(site.get("last_error") or "none")],
        ["status shared", _yes_no(site.get("status_shared"))],
    ]
    per_route = site.get("jobs") if isinstance(site.get("jobs"), dict) else {}
    for name in sorted(per_route):
        if route is not None and name.lower() != route.lower():
            continue
        counts = per_route[name] if isinstance(per_route[name], dict) else {}
        rows.append([f"route {name}", f"idle {counts.get('idle', 0)}, running {counts.get('running', 0)}"])
    out += pairs(rows)
    return out


def _snapshot_line(lrms: str, snap: Optional[Snapshot], now: float) -> str:
    if snap is None:
        return f"{lrms}: no status snapshot yet (states show ?)"
    taken = f"taken {age(now - snap.taken_at)} ago"
    if not snap.ok:
        return f"{lrms}: last batch query failed ({taken}): {snap.error}"
    return f"{lrms}: snapshot of {len(snap.jobs)} batch job(s), {taken}"


def _phase_key(job: JobView) -> str:
    return job.phase if job.phase in PHASES else "unknown"


def counts(jobs: Sequence[JobView]) -> dict[str, dict[str, int]]:
    """How many jobs per route and phase."""
    result: dict[str, dict[str, int]] = {}
    for job in jobs:
        per = result.setdefault(job.route or "?", {})
        per[_phase_key(job)] = per.get(_phase_key(job), 0) + 1
    return result


def list_text(s: Survey, jobs: Sequence[JobView], route: Optional[str]) -> str:
    out = site_status_lines(s.site_status, s.now, route)
    out.append("")
    if s.snapshots:
        out.append("Batch system states: " + "; ".join(_snapshot_line(k, v, s.now) for k, v in s.snapshots.items()))
        out.append("")
    if not jobs:
        out.append("No hpcpull jobs match." if s.jobs else "No hpcpull jobs.")
    else:
        rows = [[j.source_id, j.copy_id or "?", j.route or "?", j.owner or "?", j.batch_job_id or "-",
                 j.lrms_state, age(s.now - j.first_seen) if j.first_seen else "?", _shorten(j.phase_text, 100)]
                for j in jobs]
        out += table(["JOB", "COPY", "ROUTE", "OWNER", "BATCH JOB", "LRMS STATE", "AGE", "HPCPULL PHASE"], rows)
        out.append("")
        per_route = counts(jobs)
        present = [p for p in PHASES if any(p in c for c in per_route.values())]
        count_rows = [[name, *(str(c.get(p, 0)) for p in present), str(sum(c.values()))]
                      for name, c in sorted(per_route.items())]
        if len(count_rows) > 1:
            count_rows.append(["all", *(str(sum(c.get(p, 0) for c in per_route.values())) for p in present),
                               str(len(jobs))])
        right = range(1, len(present) + 2)
        out += table(["ROUTE", *present, "total"], count_rows, right=right)
    out += [f"note: {n}" for n in s.notes]
    return "\n".join(out) + "\n"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def list_json(s: Survey, jobs: Sequence[JobView]) -> dict[str, Any]:
    return {
        "site_status": s.site_status,
        "site_status_path": str(s.site_status_path),
        "snapshots": {
            k: None if v is None else {"taken_at": v.taken_at, "ok": v.ok, "error": v.error, "jobs": len(v.jobs)}
            for k, v in s.snapshots.items()
        },
        "jobs": [j.to_dict(s.now) for j in jobs],
        "counts": counts(jobs),
        "notes": s.notes,
    }
