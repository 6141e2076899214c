"""Job ad -> batch script, through Jinja2 templates.

Templates are looked up in the site's directories (``HPCPULL_TEMPLATE_DIRS``, those
that exist) before the packaged ones, so a site can replace a whole
``<lrms>/job.sh.j2`` or a single partial under ``common/``.  Undefined variables fail
the render (``StrictUndefined``) instead of silently producing an empty string.

Quoting contract (see DESIGN.md, "Untrusted input"):

* ``shquote`` is the only way a job-ad string reaches shell code.  It yields one bash
  word that is always on a single line: plain values stay bare, others are
  single-quoted, and values holding control characters (newline, CR, ...) use bash's
  ``$'...'`` quoting with ``\\xHH`` escapes, so a job can never start a script line of
  its own (no ``#SBATCH`` line can be smuggled in, even inside a quoted string).
* ``directive`` is the only way a string reaches a batch directive line: it accepts
  ``[A-Za-z0-9_.:,=+/@%-]+`` and rejects the job otherwise.  Numbers are ours.

The script never takes on the job's environment: it hands it to hpcpull's launcher
(``--env NAME=VALUE``), which gives it to the process it starts and keeps none of it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Optional

import jinja2

from hpcpull.config import RouteSettings
from hpcpull.errors import ConfigError, JobRejected
from hpcpull.holds import HOLD_SUBCODE_INVALID_JOB, HOLD_SUBCODE_UNSAFE_VALUE
from hpcpull.lrms import batch_system_class
from hpcpull.script.launchers import chain_words, launch_chain, uses_container
from hpcpull.script.payload import JobAd, ad_value, payload_for
from hpcpull.script.resources import resource_request
from hpcpull.staging.credentials import credentials_of
from hpcpull.state import jobdir

_SAFE_WORD = re.compile(r"[A-Za-z0-9_./:,+@%-]+\Z")  # bash gives these no meaning
_NEEDS_ANSI_C = re.compile(r"[\x00-\x1f\x7f]")
_DIRECTIVE = re.compile(r"[A-Za-z0-9_.:,=+/@%-]+\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Control files, relative to the job directory (templates `cd` there first).
FILES = {
    "control_dir": jobdir.CONTROL_DIR,
    "launcher": f"{jobdir.CONTROL_DIR}/{jobdir.LAUNCHER}",
    "job_ad": f"{jobdir.CONTROL_DIR}/{jobdir.JOB_AD}",
    "started": f"{jobdir.CONTROL_DIR}/{jobdir.STARTED}",
    "exit_status": f"{jobdir.CONTROL_DIR}/{jobdir.EXIT_STATUS}",
    "stdout": f"{jobdir.CONTROL_DIR}/{jobdir.STDOUT}",
    "stderr": f"{jobdir.CONTROL_DIR}/{jobdir.STDERR}",
    "batch_output": f"{jobdir.CONTROL_DIR}/{jobdir.BATCH_OUTPUT}",
}

# Informational job values offered to templates (always as strings, always via shquote).
JOB_INFO_ATTRIBUTES = ("ClusterId", "ProcId", "Owner", "GlobalJobId")


def packaged_template_dir() -> Path:
    """``<package>/data/templates`` when installed, else ``<repo>/templates`` in a checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "data" / "templates"
    if installed.is_dir():
        return installed
    return package.parent / "templates"


def template_search_path(route: RouteSettings) -> list[Path]:
    """The route's existing site template directories, then the packaged one."""
    return [d for d in route.template_dirs if d.is_dir()] + [packaged_template_dir()]


def shquote(value: Any) -> str:
    """``value`` as one bash word on one line (see the module docstring)."""
    text = str(value)
    if "\0" in text:
        raise JobRejected(
            f"value {text[:100]!r} contains a NUL character", hold_subcode=HOLD_SUBCODE_UNSAFE_VALUE
        )
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise JobRejected(
            f"value {text[:100]!r} is not valid text", hold_subcode=HOLD_SUBCODE_UNSAFE_VALUE
        ) from None
    if _SAFE_WORD.match(text):
        return text
    if not _NEEDS_ANSI_C.search(text):
        return "'" + text.replace("'", "'\\''") + "'"
    # $'...': escape backslash, quote, control and non-ASCII characters (as UTF-8 bytes,
    # so the result is plain ASCII and independent of the locale bash runs in).
    out = ["$'"]
    for byte in encoded:
        if byte in b"\\'":
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    out.append("'")
    return "".join(out)


def directive(value: Any) -> str:
    """``value`` if it is safe on a batch directive line, else the job is rejected."""
    text = str(value)
    if not _DIRECTIVE.match(text):
        raise JobRejected(
            f"{text[:100]!r} cannot be used on a batch directive line "
            "(allowed: letters, digits and _.:,=+/@%-)",
            hold_subcode=HOLD_SUBCODE_UNSAFE_VALUE,
        )
    return text


def envname(value: Any) -> str:
    """An environment variable name, checked again before it is written unquoted."""
    text = str(value)
    if not _ENV_NAME.match(text):
        raise JobRejected(
            f"{text[:100]!r} is not a valid environment variable name",
            hold_subcode=HOLD_SUBCODE_UNSAFE_VALUE,
        )
    return text


@jinja2.pass_context
def walltime(context: jinja2.runtime.Context, seconds: Any) -> str:
    """Jinja filter ``walltime``: seconds as the route's batch system writes a wall-time limit
    (its adapter's ``format_walltime``, e.g. Slurm's ``[D-]HH:MM:SS``)."""
    return batch_system_class(context["lrms"]).format_walltime(seconds)


def is_resource_directive(line: Any) -> bool:
    """Jinja test ``resource_directive``: an admin directive line that requests a resource (-l)."""
    words = str(line).split()
    if words and words[0].startswith("#"):
        words = words[1:]
    return bool(words) and words[0].startswith("-l")


def jinja_environment(route: RouteSettings) -> jinja2.Environment:
    """The Jinja2 environment for a route (shared by routes with the same search path)."""
    return _environment(tuple(str(p) for p in template_search_path(route)))


def _bytecode_cache() -> Optional[jinja2.BytecodeCache]:
    try:
        return jinja2.FileSystemBytecodeCache()
    except RuntimeError:  # Jinja2 found the cache directory unsafe: compile every time
        return None


@functools.lru_cache(maxsize=16)
def _environment(search_path: tuple[str, ...]) -> jinja2.Environment:
    # Cached so that compiled templates are reused in one process; FileSystemLoader
    # still notices a template file that changed (auto_reload).  Across processes, each
    # TRANSLATE would compile the templates again (~50 ms, a quarter of its CPU): Jinja2's
    # bytecode cache keeps them, per user, in <tmp>/_jinja2-cache-<uid> (mode 0700, checked
    # by Jinja2), keyed by template name and source checksum.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(search_path)),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        shquote=shquote, directive=directive, envname=envname, walltime=walltime,
    )
    env.tests["resource_directive"] = is_resource_directive
    return env


def _job_info(job_ad: JobAd) -> dict[str, str]:
    info = {}
    for name in JOB_INFO_ATTRIBUTES:
        value = ad_value(job_ad, name)
        info[name] = "" if value is None else str(value)
    return info


def container_image(job_ad: JobAd, route: RouteSettings) -> Optional[str]:
    """The image a container launcher runs: the job's own (container_image), else the route's.

    A job that asks for a container on a route without a container launcher is refused:
    running it outside its image would be a different job.
    """
    image = None
    for attribute in ("ContainerImage", "SingularityImage"):
        value = ad_value(job_ad, attribute, HOLD_SUBCODE_UNSAFE_VALUE)
        if value not in (None, ""):
            image = str(value).strip()
            break
    if not uses_container(route.launcher):
        if image is not None:
            raise JobRejected(
                f"the job asks for container image {image[:100]!r}, but route {route.name} runs no "
                "container launcher (HPCPULL_LAUNCHER)",
                hold_subcode=HOLD_SUBCODE_INVALID_JOB,
            )
        return None
    image = image or route.container_image
    if not image:
        raise JobRejected(
            f"route {route.name} runs jobs in a container, but neither the job (container_image) "
            "nor the route (HPCPULL_CONTAINER_IMAGE) names an image",
            hold_subcode=HOLD_SUBCODE_INVALID_JOB,
        )
    if image.startswith("-"):
        raise JobRejected(f"container image {image[:100]!r} may not start with '-'",
                          hold_subcode=HOLD_SUBCODE_UNSAFE_VALUE)
    return image


def template_context(job_ad: JobAd, route: RouteSettings, job_dir: Path) -> dict[str, Any]:
    """The variables a batch script template sees (documented in templates/common/CONTEXT.txt)."""
    if not job_dir.is_absolute():
        raise ValueError(f"job_dir {job_dir} must be absolute")
    resources = resource_request(job_ad, route)
    image = container_image(job_ad, route)
    chain = launch_chain(route.launcher, route.lrms, resources.total_tasks, image)
    return {
        "job_dir": str(job_dir),
        "control_dir": str(jobdir.JobDir(job_dir).control),
        "files": dict(FILES),
        "route": route.name,
        "lrms": route.lrms,
        "partition": resources.partition,
        "account": resources.account,
        "extra_directives": list(route.extra_directives),
        "environment_setup": list(route.environment_setup),
        "resources": resources,
        "launch_command": chain_words(chain),
        "launch_chain": chain,
        "container_image": image or "",
        "credentials": [(c.env, c.name) for c in credentials_of(job_ad)],
        "parallel_environment": route.parallel_environment,
        "mpi_parallel_environment": route.mpi_parallel_environment,
        "map_request_disk": route.map_request_disk,
        "payload": payload_for(job_ad),
        "python": route.python,
        "job": _job_info(job_ad),
    }


def render_batch_script(job_ad: JobAd, route: RouteSettings, job_dir: Path) -> str:
    """The batch script for ``job_ad`` on ``route``, to run in ``job_dir``.

    Raises JobRejected for a job that cannot be represented safely and ConfigError for a
    broken template (missing, syntax error, or naming an undefined variable).
    """
    context = template_context(job_ad, route, job_dir)
    name = route.template_name
    try:
        template = jinja_environment(route).get_template(name)
        return template.render(context)
    except jinja2.TemplateNotFound as exc:
        searched = ", ".join(str(p) for p in template_search_path(route))
        raise ConfigError(f"template {exc.name} not found (searched {searched})") from exc
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {name}: {exc.message}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template {exc.filename or exc.name}:{exc.lineno}: {exc.message}") from exc
