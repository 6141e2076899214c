"""hpcpull.staging.input_sandbox and output_sandbox: HTCondor file-transfer semantics on real files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import classad2
import pytest

from hpcpull.errors import SandboxError
from hpcpull.staging import files as sb
from hpcpull.staging import input_sandbox
from hpcpull.staging.input_sandbox import transfer_input_sandbox
from hpcpull.staging.output_sandbox import OutputReport, transfer_output_sandbox
from hpcpull.state.jobdir import CONTROL_DIR, INPUT_MANIFEST, STDERR, STDOUT


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def make_ad(iwd: Path, **attrs: object) -> classad2.ClassAd:
    """A job ad like condor_submit's: Cmd job.sh in the Iwd, no stdin; ``attrs`` override."""
    ad = classad2.ClassAd()
    ad["Iwd"] = str(iwd)
    ad["ClusterId"] = 42
    ad["ProcId"] = 3
    ad["Cmd"] = "job.sh"
    ad["In"] = "/dev/null"
    for name, value in attrs.items():
        ad[name] = value
    return ad


@pytest.fixture
def iwd(tmp_path: Path) -> Path:
    """The submitter's Iwd with an executable job.sh."""
    path = tmp_path / "home" / "alice" / "job"
    write(path / "job.sh", "#!/bin/sh\necho hi\n", 0o755)
    return path


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "scratch" / "alice"


def stage(ad: classad2.ClassAd, dest: Path, **kwargs: object) -> Path:
    return transfer_input_sandbox(ad, dest, **kwargs)  # type: ignore[arg-type]


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".staging-" in p.name or ".old-" in p.name)


# ------------------------------------------------------------ input: layout


def test_layout_is_cluster_proc_with_private_dirs(iwd: Path, dest: Path) -> None:
    write(iwd / "indir" / "sub" / "x.txt", "x")
    box = stage(make_ad(iwd, TransferInput="indir"), dest)
    assert box == dest / "42" / "3"
    for directory in (dest, dest / "42", box, box / "indir", box / "indir" / "sub",
                      box / CONTROL_DIR):
        assert mode_of(directory) == 0o700, directory
    assert (box / "indir" / "sub" / "x.txt").read_text() == "x"


def test_private_dirs_despite_permissive_umask(iwd: Path, dest: Path) -> None:
    old = os.umask(0o277)  # would strip the owner's write bit from plain mkdir
    try:
        box = stage(make_ad(iwd), dest)
    finally:
        os.umask(old)
    assert mode_of(box) == 0o700
    assert mode_of(dest / "42") == 0o700


# ------------------------------------------------------------ input: executable, stdin


def test_executable_staged_as_basename_and_made_user_executable(iwd: Path, dest: Path) -> None:
    src = write(iwd / "bin" / "run.sh", "#!/bin/sh\n", 0o640)
    box = stage(make_ad(iwd, Cmd="bin/run.sh"), dest, link="always")
    staged = box / "run.sh"
    assert staged.read_text() == "#!/bin/sh\n"
    assert mode_of(staged) == 0o740
    # The mode had to change, so it was copied, not linked: the original is untouched.
    assert os.stat(staged).st_ino != os.stat(src).st_ino
    assert mode_of(src) == 0o640
    assert not (box / "bin").exists()


def test_executable_not_staged_when_transfer_executable_false(iwd: Path, dest: Path) -> None:
    box = stage(make_ad(iwd, Cmd="/usr/bin/env", TransferExecutable=False), dest)
    assert not (box / "env").exists()
    assert sorted(p.name for p in box.iterdir()) == [CONTROL_DIR]


def test_stdin_staged_as_basename(iwd: Path, dest: Path) -> None:
    write(iwd / "data" / "stdin.txt", "input data")
    box = stage(make_ad(iwd, In="data/stdin.txt"), dest)
    assert (box / "stdin.txt").read_text() == "input data"


def test_stdin_used_in_place_when_transfer_in_false(iwd: Path, dest: Path) -> None:
    write(iwd / "stdin.txt", "input data")
    box = stage(make_ad(iwd, In="stdin.txt", TransferIn=False), dest)
    assert not (box / "stdin.txt").exists()
    assert (box / "job.sh").exists()


def test_dev_null_stdin_not_staged(iwd: Path, dest: Path) -> None:
    box = stage(make_ad(iwd, In="/dev/null"), dest)
    assert sorted(p.name for p in box.iterdir()) == [CONTROL_DIR, "job.sh"]


# ------------------------------------------------------------ input: TransferInput


def test_transfer_input_files_dirs_and_trailing_slash_contents(iwd: Path, dest: Path) -> None:
    write(iwd / "a.txt", "A")
    write(iwd / "dir" / "b.txt", "B")
    write(iwd / "dir" / "deep" / "c.txt", "C")
    write(iwd / "dir2" / "d.txt", "D")
    write(iwd / "dir2" / "inner" / "e.txt", "E")
    ad = make_ad(iwd, TransferInput=" a.txt , dir,, dir2/ ,")
    box = stage(ad, dest)
    assert (box / "a.txt").read_text() == "A"
    assert (box / "dir" / "b.txt").read_text() == "B"
    assert (box / "dir" / "deep" / "c.txt").read_text() == "C"
    # "dir2/" puts the contents at the top level, not the directory itself.
    assert not (box / "dir2").exists()
    assert (box / "d.txt").read_text() == "D"
    assert (box / "inner" / "e.txt").read_text() == "E"


def test_absolute_and_relative_inputs(iwd: Path, dest: Path, tmp_path: Path) -> None:
    write(tmp_path / "elsewhere" / "abs.dat", "absolute")
    write(iwd / "sub" / "rel.dat", "relative")
    ad = make_ad(iwd, TransferInput=f"{tmp_path / 'elsewhere' / 'abs.dat'},sub/rel.dat")
    box = stage(ad, dest)
    assert (box / "abs.dat").read_text() == "absolute"
    assert (box / "rel.dat").read_text() == "relative"
    assert not (box / "sub").exists()


def test_symlink_to_file_is_staged_as_the_file(iwd: Path, dest: Path) -> None:
    target = write(iwd / "real.txt", "real contents")
    os.symlink(target, iwd / "alias.txt")
    box = stage(make_ad(iwd, TransferInput="alias.txt"), dest)
    staged = box / "alias.txt"
    assert not staged.is_symlink()
    assert stat.S_ISREG(os.lstat(staged).st_mode)
    assert staged.read_text() == "real contents"


def test_copy_preserves_mode_bits(iwd: Path, dest: Path) -> None:
    write(iwd / "secret.cfg", "k=v", 0o600)
    write(iwd / "tool", "bin", 0o751)
    box = stage(make_ad(iwd, TransferInput="secret.cfg,tool"), dest, link="never")
    assert mode_of(box / "secret.cfg") == 0o600
    assert mode_of(box / "tool") == 0o751


def test_later_entry_wins_a_name_clash(iwd: Path, dest: Path) -> None:
    write(iwd / "one" / "data.txt", "first")
    write(iwd / "two" / "data.txt", "second")
    box = stage(make_ad(iwd, TransferInput="one/data.txt,two/data.txt"), dest)
    assert (box / "data.txt").read_text() == "second"


def test_transfer_input_can_replace_the_executable(iwd: Path, dest: Path) -> None:
    write(iwd / "alt" / "job.sh", "replacement", 0o644)
    box = stage(make_ad(iwd, TransferInput="alt/job.sh"), dest)
    assert (box / "job.sh").read_text() == "replacement"


def test_missing_input_raises_transfer_input_error(iwd: Path, dest: Path) -> None:
    write(iwd / "present.txt", "p")
    ad = make_ad(iwd, TransferInput="present.txt,absent.txt")
    with pytest.raises(SandboxError) as info:
        stage(ad, dest)
    assert info.value.hold_code == 13
    assert info.value.hold_subcode == 2
    assert "input file 'absent.txt' not found" in str(info.value)
    assert not (dest / "42" / "3").exists()
    assert leftovers(dest / "42") == []


def test_missing_executable_raises(iwd: Path, dest: Path) -> None:
    with pytest.raises(SandboxError) as info:
        stage(make_ad(iwd, Cmd="nope.sh"), dest)
    assert (info.value.hold_code, info.value.hold_subcode) == (13, 2)


def test_url_input_refused(iwd: Path, dest: Path) -> None:
    ad = make_ad(iwd, TransferInput="https://example.org/data.tar")
    with pytest.raises(SandboxError, match="URL inputs are not supported by hpcpull") as info:
        stage(ad, dest)
    assert info.value.hold_code == 13
    assert not (dest / "42" / "3").exists()


def test_trailing_slash_on_a_file_is_an_error(iwd: Path, dest: Path) -> None:
    write(iwd / "plain.txt", "p")
    with pytest.raises(SandboxError, match="not a directory") as info:
        stage(make_ad(iwd, TransferInput="plain.txt/"), dest)
    assert info.value.hold_code == 13


def test_input_named_like_the_control_dir_refused(iwd: Path, dest: Path) -> None:
    write(iwd / CONTROL_DIR / "x", "x")
    with pytest.raises(SandboxError, match="reserves"):
        stage(make_ad(iwd, TransferInput=CONTROL_DIR), dest)


def test_unknown_link_policy_rejected(iwd: Path, dest: Path) -> None:
    with pytest.raises(ValueError, match="link must be one of"):
        stage(make_ad(iwd), dest, link="sometimes")


# ------------------------------------------------------------ input: atomic staging


def test_reroute_replaces_previous_sandbox(iwd: Path, dest: Path) -> None:
    final = dest / "42" / "3"
    write(final / "stale-from-first-route.txt", "old")
    write(iwd / "new.txt", "new")
    box = stage(make_ad(iwd, TransferInput="new.txt"), dest)
    assert box == final
    assert not (box / "stale-from-first-route.txt").exists()
    assert (box / "new.txt").read_text() == "new"
    assert leftovers(dest / "42") == []


def test_failed_restage_keeps_previous_sandbox(iwd: Path, dest: Path) -> None:
    final = dest / "42" / "3"
    write(final / "previous.txt", "still here")
    with pytest.raises(SandboxError):
        stage(make_ad(iwd, TransferInput="absent.txt"), dest)
    assert (final / "previous.txt").read_text() == "still here"
    assert leftovers(dest / "42") == []


def test_interrupted_staging_never_appears_under_final_name(
    iwd: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(iwd / "a.txt", "A")

    def crash(sandbox: Path) -> None:
        assert (sandbox / "a.txt").exists()  # staging had progressed
        assert sandbox.name.startswith("3.staging-")
        raise KeyboardInterrupt

    monkeypatch.setattr(input_sandbox, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        stage(make_ad(iwd, TransferInput="a.txt"), dest)
    assert not (dest / "42" / "3").exists()
    assert leftovers(dest / "42") == []


def test_crash_while_removing_previous_sandbox_keeps_a_complete_one(
    iwd: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = dest / "42" / "3"
    for i in range(3):
        write(final / f"old{i}.txt", "old")
    write(iwd / "new.txt", "new")
    real_rmtree = sb.shutil.rmtree

    def crash_midway(path: object, *args: object, **kwargs: object) -> None:
        if ".staging-" in str(path):
            real_rmtree(path, *args, **kwargs)  # type: ignore[arg-type]
            return
        next(Path(str(path)).glob("old*.txt")).unlink()  # removal had begun ...
        raise KeyboardInterrupt  # ... when the hook was killed

    monkeypatch.setattr(sb.shutil, "rmtree", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        stage(make_ad(iwd, TransferInput="new.txt"), dest)
    # Whatever sits under the final name is a whole sandbox: here the new one.
    assert (final / "new.txt").read_text() == "new"
    assert (final / CONTROL_DIR / INPUT_MANIFEST).exists()
    assert sorted(final.glob("old*.txt")) == []


def test_leftovers_of_a_killed_attempt_are_removed(iwd: Path, dest: Path) -> None:
    write(dest / "42" / "3.staging-deadbeef" / "half.txt", "half")
    write(dest / "42" / "3.old-cafe0001" / "old.txt", "old")
    write(dest / "42" / "13.staging-other" / "keep.txt", "other job")
    stage(make_ad(iwd), dest)
    assert leftovers(dest / "42") == ["13.staging-other"]


# ------------------------------------------------------------ input: linking


def test_link_always_hard_links_inputs(iwd: Path, dest: Path) -> None:
    src = write(iwd / "big.dat", "data")
    write(iwd / "d" / "inner.dat", "inner")
    box = stage(make_ad(iwd, TransferInput="big.dat,d"), dest, link="always")
    assert os.stat(box / "big.dat").st_ino == os.stat(src).st_ino
    assert os.stat(box / "d" / "inner.dat").st_ino == os.stat(iwd / "d" / "inner.dat").st_ino
    assert os.stat(box / "job.sh").st_ino == os.stat(iwd / "job.sh").st_ino


def test_link_never_copies(iwd: Path, dest: Path) -> None:
    src = write(iwd / "big.dat", "data")
    box = stage(make_ad(iwd, TransferInput="big.dat"), dest, link="never")
    assert os.stat(box / "big.dat").st_ino != os.stat(src).st_ino
    assert (box / "big.dat").read_text() == "data"


def test_link_auto_copies_user_files_but_links_spool_files(
    iwd: Path, dest: Path, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spooled = write(spool / "42" / "3" / "spooled.dat", "from spool")
    user = write(iwd / "user.dat", "from user")
    ad = make_ad(iwd, TransferInput=f"user.dat,{spooled}")
    box = stage(ad, dest, spool_dirs=[spool])
    assert os.stat(box / "user.dat").st_ino != os.stat(user).st_ino
    assert os.stat(box / "spooled.dat").st_ino == os.stat(spooled).st_ino
    # A job writing to its copy must not change the user's original.
    (box / "user.dat").write_text("changed by job")
    assert user.read_text() == "from user"


def test_link_falls_back_to_copy(iwd: Path, dest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write(iwd / "x.dat", "x")

    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    box = stage(make_ad(iwd, TransferInput="x.dat"), dest, link="always")
    assert (box / "x.dat").read_text() == "x"
    assert os.stat(box / "x.dat").st_ino != os.stat(src).st_ino


# ------------------------------------------------------------ input: manifest


def test_input_manifest_lists_top_level_entries(iwd: Path, dest: Path) -> None:
    write(iwd / "a.txt", "12345")
    write(iwd / "d" / "x", "x")
    box = stage(make_ad(iwd, TransferInput="a.txt,d"), dest)
    manifest = json.loads((box / CONTROL_DIR / INPUT_MANIFEST).read_text())
    entries = {e["name"]: e for e in manifest["entries"]}
    assert sorted(entries) == ["a.txt", "d", "job.sh"]
    assert entries["a.txt"]["type"] == "file"
    assert entries["a.txt"]["size"] == 5
    assert entries["a.txt"]["mtime_ns"] == os.stat(box / "a.txt").st_mtime_ns
    assert entries["d"]["type"] == "dir"


# ------------------------------------------------------------ output helpers


def make_sandbox(root: Path, stdout: str | None = "out\n", stderr: str | None = "err\n") -> Path:
    """A finished job's sandbox with no input manifest (everything counts as new)."""
    box = root / "box"
    (box / CONTROL_DIR).mkdir(parents=True)
    if stdout is not None:
        write(box / CONTROL_DIR / STDOUT, stdout)
    if stderr is not None:
        write(box / CONTROL_DIR / STDERR, stderr)
    return box


def tmp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob(".hpcpull-*")]


# ------------------------------------------------------------ output: which files


def test_auto_detect_returns_new_and_modified_top_level_files(iwd: Path, dest: Path) -> None:
    write(iwd / "same.txt", "unchanged")
    write(iwd / "grow.txt", "v1")
    write(iwd / "touch.txt", "abc")
    write(iwd / "d" / "x", "x")
    box = stage(make_ad(iwd, TransferInput="same.txt,grow.txt,touch.txt,d"), dest)
    (iwd / "grow.txt").unlink()  # so we can see what comes back
    write(box / "grow.txt", "v2 longer")
    st = os.stat(box / "touch.txt")
    os.utime(box / "touch.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    write(box / "new.txt", "new")
    write(box / "d" / "in_subdir.txt", "not scanned")
    write(box / "newdir" / "f.txt", "not scanned")
    write(box / CONTROL_DIR / STDOUT, "out")

    report = transfer_output_sandbox(make_ad(iwd), box)

    assert report.errors == []
    assert report.returned == ["grow.txt", "new.txt", "touch.txt"]
    assert (iwd / "grow.txt").read_text() == "v2 longer"
    assert (iwd / "new.txt").read_text() == "new"
    assert not (iwd / "d" / "in_subdir.txt").exists()
    assert not (iwd / "newdir").exists()
    assert not (iwd / CONTROL_DIR).exists()


def test_auto_detect_does_not_return_unchanged_executable(iwd: Path, dest: Path) -> None:
    box = stage(make_ad(iwd), dest)
    report = transfer_output_sandbox(make_ad(iwd), box)
    assert "job.sh" not in report.returned
    assert report.returned == []


def test_explicit_list_returns_subdir_file_as_basename(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "results" / "deep" / "out.dat", "payload")
    write(box / "ignored.txt", "not listed")
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput="results/deep/out.dat"), box)
    assert report.returned == ["out.dat"]
    assert report.errors == []
    assert (iwd / "out.dat").read_text() == "payload"
    assert not (iwd / "results").exists()
    assert not (iwd / "ignored.txt").exists()


def test_empty_transfer_output_returns_only_stdio(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "new.txt", "new")
    ad = make_ad(iwd, TransferOutput="", Out="job.out")
    report = transfer_output_sandbox(ad, box)
    assert report.returned == []
    assert not (iwd / "new.txt").exists()
    assert (iwd / "job.out").read_text() == "out\n"


def test_directory_output_merges_into_iwd(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "work" / "outdir" / "a.txt", "new a")
    write(box / "work" / "outdir" / "sub" / "b.txt", "b")
    write(iwd / "outdir" / "a.txt", "old a")
    write(iwd / "outdir" / "keep.txt", "user file")
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput="work/outdir"), box)
    assert report.returned == ["outdir"]
    assert report.errors == []
    assert (iwd / "outdir" / "a.txt").read_text() == "new a"
    assert (iwd / "outdir" / "sub" / "b.txt").read_text() == "b"
    assert (iwd / "outdir" / "keep.txt").read_text() == "user file"


def test_directory_output_with_trailing_slash_returns_contents(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "outdir" / "a.txt", "a")
    write(box / "outdir" / "sub" / "b.txt", "b")
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput="outdir/"), box)
    assert sorted(report.returned) == ["a.txt", "sub"]
    assert report.errors == []
    assert (iwd / "a.txt").read_text() == "a"
    assert (iwd / "sub" / "b.txt").read_text() == "b"
    assert not (iwd / "outdir").exists()


def test_missing_listed_output_is_an_error_entry(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "there.txt", "t")
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput="there.txt,gone.txt"), box)
    assert report.returned == ["there.txt"]
    assert report.errors == ["output 'gone.txt' was not found in the sandbox"]
    assert (iwd / "there.txt").read_text() == "t"


def test_on_success_skips_outputs_of_failed_job(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "result.txt", "r")
    ad = make_ad(iwd, WhenToTransferOutput="ON_SUCCESS", ExitCode=1, ExitBySignal=False,
                 Out="job.out", Err="job.err")
    report = transfer_output_sandbox(ad, box)
    assert report.returned == []
    assert not (iwd / "result.txt").exists()
    assert (iwd / "job.out").read_text() == "out\n"
    assert (iwd / "job.err").read_text() == "err\n"


def test_on_success_skips_outputs_of_signalled_job(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "result.txt", "r")
    ad = make_ad(iwd, WhenToTransferOutput="ON_SUCCESS", ExitBySignal=True, ExitSignal=9)
    assert transfer_output_sandbox(ad, box).returned == []
    assert not (iwd / "result.txt").exists()


def test_on_success_honours_success_exit_code(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "result.txt", "r")
    ad = make_ad(iwd, WhenToTransferOutput="ON_SUCCESS", ExitBySignal=False, ExitCode=3,
                 SuccessExitCode=3)
    assert transfer_output_sandbox(ad, box).returned == ["result.txt"]
    assert (iwd / "result.txt").read_text() == "r"


def test_on_exit_returns_outputs_of_failed_job(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "result.txt", "r")
    ad = make_ad(iwd, WhenToTransferOutput="ON_EXIT", ExitBySignal=False, ExitCode=1)
    assert transfer_output_sandbox(ad, box).returned == ["result.txt"]


# ------------------------------------------------------------ output: remaps


def test_remaps_relative_absolute_and_new_subdirectory(
    iwd: Path, tmp_path: Path
) -> None:
    box = make_sandbox(tmp_path)
    write(box / "a.txt", "A")
    write(box / "sub" / "b.txt", "B")
    write(box / "c.txt", "C")
    absolute = tmp_path / "archive" / "c-final.txt"
    ad = make_ad(
        iwd,
        TransferOutput="a.txt,sub/b.txt,c.txt",
        TransferOutputRemaps=f" a.txt = renamed.txt ; b.txt=new/dir/b2.txt;c.txt = {absolute}",
    )
    report = transfer_output_sandbox(ad, box)
    assert report.errors == []
    assert report.returned == ["renamed.txt", "new/dir/b2.txt", str(absolute)]
    assert (iwd / "renamed.txt").read_text() == "A"
    assert (iwd / "new" / "dir" / "b2.txt").read_text() == "B"
    assert absolute.read_text() == "C"
    assert not (iwd / "a.txt").exists()
    assert not (iwd / "c.txt").exists()


def test_remap_escapes_and_full_path_key(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "a=b;c.txt", "odd name")
    write(box / "sub" / "d.txt", "D")
    ad = make_ad(
        iwd,
        TransferOutput="a=b;c.txt,sub/d.txt",
        TransferOutputRemaps=r"a\=b\;c.txt = plain.txt; sub/d.txt = e\;f.txt",
    )
    report = transfer_output_sandbox(ad, box)
    assert report.errors == []
    assert (iwd / "plain.txt").read_text() == "odd name"
    assert (iwd / "e;f.txt").read_text() == "D"


def test_remap_applies_to_auto_detected_files(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "made.txt", "m")
    ad = make_ad(iwd, TransferOutputRemaps="made.txt = results/made.txt")
    assert transfer_output_sandbox(ad, box).returned == ["results/made.txt"]
    assert (iwd / "results" / "made.txt").read_text() == "m"


def test_url_remap_is_an_error_entry(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "up.txt", "u")
    write(box / "local.txt", "l")
    ad = make_ad(iwd, TransferOutput="up.txt,local.txt",
                 TransferOutputRemaps="up.txt = https://example.org/up.txt")
    report = transfer_output_sandbox(ad, box)
    assert report.returned == ["local.txt"]
    assert len(report.errors) == 1
    assert "URL output remaps are not supported by hpcpull" in report.errors[0]
    assert "'up.txt'" in report.errors[0]
    assert not (iwd / "up.txt").exists()


# ------------------------------------------------------------ output: stdout/stderr


def test_stdout_stderr_relative_paths_create_parents(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path, stdout="OUT", stderr="ERR")
    ad = make_ad(iwd, Out="logs/job.out", Err="logs/job.err", TransferOutput="")
    report = transfer_output_sandbox(ad, box)
    assert report == OutputReport(returned=[], errors=[])
    assert (iwd / "logs" / "job.out").read_text() == "OUT"
    assert (iwd / "logs" / "job.err").read_text() == "ERR"


def test_stdout_stderr_absolute_paths(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path, stdout="OUT", stderr="ERR")
    out, err = tmp_path / "abs" / "o.txt", tmp_path / "abs" / "e.txt"
    report = transfer_output_sandbox(make_ad(iwd, Out=str(out), Err=str(err)), box)
    assert report.errors == []
    assert out.read_text() == "OUT"
    assert err.read_text() == "ERR"


def test_stdout_remapped_by_basename(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path, stdout="OUT", stderr="ERR")
    ad = make_ad(iwd, Out="logs/job.out", Err="job.err",
                 TransferOutputRemaps="job.out = final/stdout.txt; job.err = final/stderr.txt")
    report = transfer_output_sandbox(ad, box)
    assert report.errors == []
    assert (iwd / "final" / "stdout.txt").read_text() == "OUT"
    assert (iwd / "final" / "stderr.txt").read_text() == "ERR"
    assert not (iwd / "logs").exists()
    assert not (iwd / "job.err").exists()


def test_out_equals_err_returns_the_combined_stream_once(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path, stdout="both streams", stderr=None)
    report = transfer_output_sandbox(make_ad(iwd, Out="job.log", Err="job.log"), box)
    assert report.errors == []
    assert (iwd / "job.log").read_text() == "both streams"


def test_missing_stdout_is_an_error_entry(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path, stdout=None, stderr="ERR")
    report = transfer_output_sandbox(make_ad(iwd, Out="job.out", Err="job.err"), box)
    assert len(report.errors) == 1
    assert report.errors[0].startswith("Out 'job.out'")
    assert "not found" in report.errors[0]
    assert not (iwd / "job.out").exists()
    assert (iwd / "job.err").read_text() == "ERR"


def test_dev_null_stdout_not_returned(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    report = transfer_output_sandbox(make_ad(iwd, Out="/dev/null", Err="/dev/null"), box)
    assert report.errors == []
    assert sorted(p.name for p in iwd.iterdir()) == ["job.sh"]


def test_stdout_symlink_is_not_followed(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path, stdout=None)
    os.symlink("/etc/passwd", box / CONTROL_DIR / STDOUT)
    report = transfer_output_sandbox(make_ad(iwd, Out="job.out"), box)
    assert not (iwd / "job.out").exists()
    assert any("symbolic link" in line for line in report.errors)


# ------------------------------------------------------------ output: security


@pytest.mark.parametrize(
    ("name", "why"),
    [("../escape.txt", "'..'"), ("sub/../../escape.txt", "'..'"), ("/etc/passwd", "absolute")],
)
def test_names_outside_the_sandbox_refused(
    iwd: Path, tmp_path: Path, name: str, why: str
) -> None:
    box = make_sandbox(tmp_path)
    write(box / "sub" / "x", "x")
    write(tmp_path / "escape.txt", "outside the sandbox")
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput=name), box)
    assert report.returned == []
    assert len(report.errors) == 1
    assert report.errors[0].startswith(f"output '{name}'")
    assert why in report.errors[0]
    assert not (iwd / "escape.txt").exists()
    assert not (iwd / "passwd").exists()


def test_control_directory_cannot_be_listed(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput=f"{CONTROL_DIR}/{STDOUT}"), box)
    assert report.returned == []
    assert "control directory" in report.errors[0]


def test_symlink_found_by_auto_detect_is_not_followed(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    os.symlink("/etc/passwd", box / "leak.txt")
    write(box / "ok.txt", "ok")
    report = transfer_output_sandbox(make_ad(iwd), box)
    assert report.returned == ["ok.txt"]
    assert report.errors == ["output 'leak.txt' is a symbolic link; not returned"]
    assert not os.path.lexists(iwd / "leak.txt")


def test_listed_symlink_is_not_followed(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    os.symlink("/etc/passwd", box / "leak.txt")
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput="leak.txt"), box)
    assert report.returned == []
    assert report.errors == ["output 'leak.txt' is a symbolic link; not returned"]
    assert not os.path.lexists(iwd / "leak.txt")


def test_symlinked_directory_in_a_path_is_not_followed(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(tmp_path / "outside" / "secret.txt", "secret")
    os.symlink(tmp_path / "outside", box / "linkdir")
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput="linkdir/secret.txt"), box)
    assert report.returned == []
    assert "symbolic link" in report.errors[0]
    assert not (iwd / "secret.txt").exists()


def test_symlinks_inside_returned_directory_are_skipped(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "outdir" / "real.txt", "real")
    os.symlink("/etc/passwd", box / "outdir" / "leak.txt")
    os.symlink("/etc", box / "outdir" / "etc")
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput="outdir,outdir/"), box)
    assert report.errors == []
    assert (iwd / "outdir" / "real.txt").read_text() == "real"
    assert (iwd / "real.txt").read_text() == "real"
    for leaked in ("outdir/leak.txt", "outdir/etc", "leak.txt", "etc"):
        assert not os.path.lexists(iwd / leaked), leaked


def test_symlink_at_destination_is_replaced_not_written_through(
    iwd: Path, tmp_path: Path
) -> None:
    box = make_sandbox(tmp_path)
    write(box / "result.txt", "job output")
    victim = write(tmp_path / "victim.txt", "precious")
    os.symlink(victim, iwd / "result.txt")
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput="result.txt"), box)
    assert report.errors == []
    assert not (iwd / "result.txt").is_symlink()
    assert (iwd / "result.txt").read_text() == "job output"
    assert victim.read_text() == "precious"


# ------------------------------------------------------------ output: placement


def test_outputs_hard_linked_on_same_filesystem(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "big.dat", "big")
    write(box / "dir" / "inner.dat", "inner")
    ad = make_ad(iwd, TransferOutput="big.dat,dir", Out="job.out")
    transfer_output_sandbox(ad, box)
    assert os.stat(iwd / "big.dat").st_ino == os.stat(box / "big.dat").st_ino
    assert os.stat(iwd / "dir" / "inner.dat").st_ino == os.stat(box / "dir" / "inner.dat").st_ino
    assert os.stat(iwd / "job.out").st_ino == os.stat(box / CONTROL_DIR / STDOUT).st_ino


def test_outputs_copied_when_link_false(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "big.dat", "big", 0o640)
    transfer_output_sandbox(make_ad(iwd, TransferOutput="big.dat"), box, link=False)
    assert os.stat(iwd / "big.dat").st_ino != os.stat(box / "big.dat").st_ino
    assert (iwd / "big.dat").read_text() == "big"
    assert mode_of(iwd / "big.dat") == 0o640


def test_existing_file_replaced_atomically_without_temp_leftovers(
    iwd: Path, tmp_path: Path
) -> None:
    box = make_sandbox(tmp_path)
    write(box / "result.txt", "new")
    old = write(iwd / "result.txt", "old")
    old_inode = os.stat(old).st_ino
    transfer_output_sandbox(make_ad(iwd, TransferOutput="result.txt"), box, link=False)
    assert (iwd / "result.txt").read_text() == "new"
    assert os.stat(iwd / "result.txt").st_ino != old_inode  # renamed over, not rewritten
    assert tmp_files(iwd) == []


def test_failed_placement_is_an_error_and_leaves_no_temp_file(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "result.txt", "new")
    write(box / "other.txt", "other")
    (iwd / "result.txt").mkdir()  # a directory is in the way
    report = transfer_output_sandbox(make_ad(iwd, TransferOutput="result.txt,other.txt"), box)
    assert report.returned == ["other.txt"]
    assert len(report.errors) == 1
    assert report.errors[0].startswith("output 'result.txt' could not be returned")
    assert tmp_files(iwd) == []


def test_missing_sandbox_raises_transfer_output_error(iwd: Path, tmp_path: Path) -> None:
    with pytest.raises(SandboxError) as info:
        transfer_output_sandbox(make_ad(iwd), tmp_path / "nowhere")
    assert info.value.hold_code == 12


def test_round_trip_through_both_transfers(iwd: Path, dest: Path) -> None:
    write(iwd / "in.txt", "input")
    ad = make_ad(iwd, TransferInput="in.txt", Out="job.out", Err="job.err")
    box = stage(ad, dest, link="always")
    write(box / CONTROL_DIR / STDOUT, "hello\n")
    write(box / CONTROL_DIR / STDERR, "")
    write(box / "answer.txt", "42")
    report = transfer_output_sandbox(ad, box)
    assert report == OutputReport(returned=["answer.txt"], errors=[])
    assert (iwd / "answer.txt").read_text() == "42"
    assert (iwd / "job.out").read_text() == "hello\n"
    assert (iwd / "in.txt").read_text() == "input"
