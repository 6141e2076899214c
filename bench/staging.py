"""Benchmark 4: staging an input sandbox from SPOOL into the job directory vs ``cp -r``.

A job whose sandbox the schedd keeps in SPOOL (HTCondor-C arrivals, condor_submit -spool)
is staged by hpcpull.staging.input_sandbox.transfer_input_sandbox with hard links (``link="auto"``
links only files under SPOOL, which nothing else reads), so on the same filesystem
nothing is copied.  The sandbox: ``--files`` small files of ``--file-kib`` each plus one
large file, ``--size-mib`` in all (default 2,000 x 64 KiB + one file, 1 GiB), and the
executable.  Side by side, interleaved (order rotating), ``--repeat`` times each:

* ``cp -r`` of the spooled Iwd to the scratch filesystem (the baseline);
* hpcpull from SPOOL (hard links): ratio target >= 0.9 and bytes copied ~ 0;
* hpcpull with ``link="never"`` (a job outside SPOOL: every byte copied): target >= 0.9.

hpcpull's staging runs in this process (the cost of starting the TRANSLATE process is
benchmark 2's); ``cp`` is a process, which costs ~1 ms.  ``sync`` runs before each timed
step (untimed) so each starts with no dirty pages.  Bytes copied are counted from the
staged files: a file sharing the source's inode cost no data blocks; the others count
their allocated blocks.  The filesystem's free space before and after is shown too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import classad2  # noqa: E402

from bench.common import Result, report, workspace  # noqa: E402
from hpcpull.staging.input_sandbox import transfer_input_sandbox  # noqa: E402

QUICK = ["--size-mib", "256", "--files", "500"]
TINY = ["--size-mib", "1", "--files", "20", "--file-kib", "4", "--repeat", "1"]  # the smoke test's size: seconds
TARGET = 0.9
MIB = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mib", type=float, default=1024, help="sandbox size in MiB (default 1024)")
    parser.add_argument("--files", type=int, default=2000, help="number of small files (default 2000)")
    parser.add_argument("--file-kib", type=int, default=64, help="size of each small file in KiB (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--dir", default=None, help="where to work (default: the temp dir); SPOOL and "
                        "scratch are both under it, i.e. on one filesystem")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--slurm-conf", default=None, help=argparse.SUPPRESS)  # run_all passes it to all


def _make_sandbox(iwd: Path, files: int, file_kib: int, size: int) -> int:
    """Write the spooled sandbox; returns its size in bytes."""
    (iwd / "inputs").mkdir(parents=True)
    block = os.urandom(file_kib * 1024)
    total = 0
    for i in range(files):
        data = i.to_bytes(8, "little") + block[8:]  # distinct contents
        (iwd / "inputs" / f"in{i:05d}.dat").write_bytes(data)
        total += len(data)
    exe = iwd / "job.sh"
    exe.write_text("#!/bin/sh\nls inputs | wc -l\n")
    exe.chmod(0o755)
    total += exe.stat().st_size
    large = max(0, size - total)
    chunk = os.urandom(min(large, 16 * MIB)) if large else b""
    with open(iwd / "large.bin", "wb") as out:
        left = large
        while left:
            piece = chunk[:left]
            out.write(piece)
            left -= len(piece)
    return total + large


def _job_ad(iwd: Path, cluster: int, proc: int) -> classad2.ClassAd:
    ad = classad2.ClassAd()
    ad.update({"ClusterId": cluster, "ProcId": proc, "Iwd": str(iwd), "Cmd": "job.sh", "In": "/dev/null",
               "TransferInput": "inputs,large.bin", "SUBMIT_Iwd": "/home/someone/job"})
    return ad


def _copied(source: Path, staged: Path) -> tuple[int, int, int]:
    """(files sharing the source's inode, files not, bytes allocated to the latter)."""
    linked = separate = allocated = 0
    for root, _dirs, files in os.walk(staged):
        rel = Path(root).relative_to(staged)
        if rel.parts[:1] == (".hpcpull",):
            continue
        for name in files:
            st = os.lstat(Path(root) / name)
            try:
                same = os.lstat(source / rel / name).st_ino == st.st_ino
            except FileNotFoundError:
                same = False
            if same:
                linked += 1
            else:
                separate += 1
                allocated += st.st_blocks * 512
    return linked, separate, allocated


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def run(args: argparse.Namespace) -> list[Result]:
    size = int(args.size_mib * MIB)
    with workspace(args.keep, parent=args.dir) as work:
        spool = work / "spool"
        iwd = spool / "4242" / "0"  # a spooled job's Iwd: SPOOL/<cluster>/<proc>
        total = _make_sandbox(iwd, args.files, args.file_kib, size)
        scratch = work / "scratch"
        scratch.mkdir()
        times: dict[str, list[float]] = {"cp -r": [], "spool": [], "copy": []}
        counts: dict[str, tuple[int, int, int]] = {}
        freed: dict[str, int] = {}
        modes = list(times)
        for rep in range(args.repeat):
            for i, mode in enumerate(modes[rep % 3:] + modes[:rep % 3]):
                proc = rep * 3 + i
                subprocess.run(["sync"], check=False)
                free_before = _free(scratch)
                start = time.perf_counter()
                if mode == "cp -r":
                    staged = scratch / "cp" / str(proc)
                    staged.parent.mkdir(exist_ok=True)
                    subprocess.run(["cp", "-r", str(iwd), str(staged)], check=True)
                else:
                    staged = transfer_input_sandbox(_job_ad(iwd, 4242, proc), scratch / mode,
                                                    link="auto" if mode == "spool" else "never", spool_dirs=[spool])
                times[mode].append(time.perf_counter() - start)
                subprocess.run(["sync"], check=False)
                freed[mode] = free_before - _free(scratch)
                counts[mode] = _copied(iwd, staged)
                shutil.rmtree(staged)
    cp_s = statistics.median(times["cp -r"])
    cp_rate = total / MIB / cp_s
    results = []
    for mode, label in (("spool", "staging-spool"), ("copy", "staging-copy")):
        rate = total / MIB / statistics.median(times[mode])
        linked, separate, allocated = counts[mode]
        result = Result(label, rate, cp_rate, "MiB/s", target=f">= {TARGET:g}", met=rate >= TARGET * cp_rate)
        result.details += [
            f"{total / MIB:.0f} MiB sandbox ({args.files} x {args.file_kib} KiB + one "
            f"{max(0, total - args.files * args.file_kib * 1024) / MIB:.0f} MiB file + the executable): "
            f"hpcpull ({'link=auto from SPOOL' if mode == 'spool' else 'link=never'}) "
            f"{1000 * statistics.median(times[mode]):.0f} ms vs cp -r {1000 * cp_s:.0f} ms (median of {args.repeat})",
            f"bytes copied: {allocated / MIB:.1f} MiB in {separate} file(s); {linked} file(s) hard-linked "
            f"(same inode as in SPOOL); cp -r copied {counts['cp -r'][2] / MIB:.0f} MiB",
            f"filesystem free space after staging (synced): -{max(0, freed[mode]) / MIB:.1f} MiB "
            f"(cp -r: -{max(0, freed['cp -r']) / MIB:.0f} MiB)",
        ]
        results.append(result)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.staging", description=__doc__.split("\n")[0])
    add_arguments(parser)
    report(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
