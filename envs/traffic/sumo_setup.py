"""SUMO set-up in one place: environment variables, the two back ends, clear errors, and the libsumo guard.

Why this module exists:

- ``import sumo_rl`` raises unless ``SUMO_HOME`` is set, and ``LIBSUMO_AS_TRACI`` is read when traci/sumo_rl are
  first imported. :func:`prepare_environment` sets both (SUMO_HOME to the eclipse-sumo wheel's, so the binary,
  libsumo and the tools are one SUMO version) and must run before either is imported, in every process.
- libsumo runs ONE simulation per process, and a second ``start`` silently replaces (rewinds) the first.
  :func:`claim_libsumo` makes that an error instead: an env holds the process's libsumo slot while its
  simulation runs (from ``reset`` until the episode window ends, ``close()``, or the env is garbage-collected),
  and starting a second simulation meanwhile raises :class:`LibsumoBusyError`. Creating envs never needs the
  slot (they read the network through a short-lived SUMO subprocess), so envs can be created while another
  runs, and envs whose episodes do not overlap can share a process (tests). A process forked while a libsumo
  simulation was running inherits a copy of it (whose output files it would corrupt), so it refuses libsumo.
- SUMO writes its outputs (tripinfo, log) into a private temporary folder per env. A process killed outright
  (SIGKILL of a vector env's worker) cannot delete it, so the folder is named after its process
  (:func:`new_workdir`) and every later env creation and close, and every exit of a process that used one,
  deletes the folders of processes that no longer run (:func:`remove_stale_workdirs`).
- traci starts a SUMO subprocess per simulation. traci's own ``start`` retries the connection after a fixed
  1 s sleep (most of the ~1 s cost of a traci reset); :func:`start_traci` polls every 20 ms instead and turns
  an early exit of SUMO into an error that quotes SUMO's message.
"""

from __future__ import annotations

import atexit
import gc
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
import xml.parsers.expat
from pathlib import Path
from typing import Any, Sequence


class SumoError(RuntimeError):
    """SUMO failed; the message says what, where, and what to do."""


class SumoLoadError(SumoError, ValueError):
    """A network, route or additional file could not be loaded; the message names the file."""


class SumoConnectionError(SumoError):
    """The SUMO process (traci back end) died or closed the connection mid-episode."""


class LibsumoBusyError(SumoError):
    """A second libsumo simulation was requested in a process that already runs one."""


# ------------------------------------------------------------------------------------------------ environment


def prepare_environment() -> str:
    """Set SUMO_HOME (eclipse-sumo wheel) and LIBSUMO_AS_TRACI; return SUMO_HOME. Call before importing sumo_rl."""
    import sumo

    os.environ["SUMO_HOME"] = sumo.SUMO_HOME
    os.environ.setdefault("LIBSUMO_AS_TRACI", "quiet")  # "quiet": traci's import does not print a banner
    return sumo.SUMO_HOME


def sumo_binary() -> str:
    """The ``sumo`` executable of the eclipse-sumo wheel (the same version as libsumo)."""
    return os.path.join(prepare_environment(), "bin", "sumo")


def import_sumo_rl() -> Any:
    """``sumo_rl.environment.env`` with the environment prepared first."""
    prepare_environment()
    import sumo_rl.environment.env as sumo_rl_env

    return sumo_rl_env


def check_xml(path: str | Path, role: str) -> None:
    """Raise SumoLoadError naming ``path`` if it is not well-formed XML (fast: expat, no SUMO involved)."""
    parser = xml.parsers.expat.ParserCreate()
    try:
        with open(path, "rb") as f:
            parser.ParseFile(f)
    except xml.parsers.expat.ExpatError as err:
        raise SumoLoadError(
            f"{role} file {path} is not valid XML: {xml.parsers.expat.ErrorString(err.code)} "
            f"at line {err.lineno}, column {err.offset}"
        ) from None
    except OSError as err:
        raise SumoLoadError(f"cannot read {role} file {path}: {err}") from None


# ------------------------------------------------------------------------------------------------ output folders


def _pid_namespace() -> int:
    """This process's PID namespace (0 where unknown): a pid in a folder name means nothing in another one."""
    try:
        return int(re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or 0)
    except OSError:
        return 0


_WORKDIR = re.compile(r"^lepton-sumo-pid(\d+)-ns(\d+)-")
_PID_NS = _pid_namespace()
_OWN_WORKDIRS: set[str] = set()  # this process's folders not yet removed (deleted at exit)


def new_workdir() -> Path:
    """A new temporary folder for one env's SUMO outputs, named after this process (see the module docstring)."""
    remove_stale_workdirs()
    path = tempfile.mkdtemp(prefix=f"lepton-sumo-pid{os.getpid()}-ns{_PID_NS}-")
    _OWN_WORKDIRS.add(path)
    return Path(path)


def remove_workdir(path: str | Path) -> None:
    """Delete an env's output folder (and those of processes that died without deleting theirs)."""
    shutil.rmtree(path, ignore_errors=True)
    _OWN_WORKDIRS.discard(str(path))
    remove_stale_workdirs()


def _process_gone(pid: int) -> bool:
    """True if no process ``pid`` runs: absent, or a zombie (killed, not yet reaped by its parent)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def remove_stale_workdirs(root: str | Path | None = None) -> list[Path]:
    """Delete the output folders (this user's, this PID namespace's) whose process no longer runs; returns them."""
    removed = []
    try:
        entries = list(os.scandir(root or tempfile.gettempdir()))
    except OSError:
        return removed
    for entry in entries:
        match = _WORKDIR.match(entry.name)
        if match is None or int(match[2]) != _PID_NS or int(match[1]) == os.getpid():
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if _process_gone(int(match[1])):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


@atexit.register
def _remove_workdirs_at_exit() -> None:
    """Envs never closed (a worker ending without env.close()) leave no folder behind at a normal exit."""
    for path in list(_OWN_WORKDIRS):
        if _WORKDIR.match(os.path.basename(path)) and f"pid{os.getpid()}-" in os.path.basename(path):
            shutil.rmtree(path, ignore_errors=True)  # (a forked child inherits the set: only its own folders)
    remove_stale_workdirs()


# ------------------------------------------------------------------------------------------------ libsumo guard


class _LibsumoSlot:
    owner: "weakref.ref[Any] | None" = None
    description: str = ""
    running: bool = False  # a simulation is loaded right now (for the fork check)
    inherited_running: bool = False  # this process was forked while the parent had one loaded


_SLOT = _LibsumoSlot()
_LOCK = threading.RLock()  # re-entrant: a finalizer run by gc may release


def _after_fork_in_child() -> None:
    _SLOT.inherited_running = _SLOT.running or _SLOT.inherited_running
    _SLOT.owner, _SLOT.running = None, False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _held_by_other(owner: Any) -> bool:
    holder = _SLOT.owner() if _SLOT.owner is not None else None
    return holder is not None and holder is not owner  # (no strong reference survives this call)


def claim_libsumo(owner: Any, description: str) -> None:
    """Make ``owner`` this process's only libsumo user, or raise LibsumoBusyError saying who holds it."""
    if _held_by_other(owner):
        gc.collect()  # an env dropped without close() may only be waiting for the cycle collector
    with _LOCK:
        if _held_by_other(owner):
            raise LibsumoBusyError(
                f"a libsumo simulation is already running in this process ({_SLOT.description}); libsumo runs "
                "one simulation per process and a second one would silently replace the first. Close that env "
                "(env.close()) or let its episode end first, use backend='traci', or run each env in its own "
                "process (lepton_sim.make_vec does this for the traffic envs)."
            )
        if _SLOT.inherited_running:
            raise LibsumoBusyError(
                "this process was forked while its parent had a libsumo simulation running; the copy it "
                "inherited cannot be used or closed safely. Start worker processes with the 'spawn' or "
                "'forkserver' method, or close the parent's env before forking."
            )
        if _SLOT.owner is None or _SLOT.owner() is None:
            import libsumo

            if libsumo.isLoaded():
                raise LibsumoBusyError(
                    "a libsumo simulation not opened by lepton-sim is running in this process (for example a "
                    "sumo_rl SumoEnvironment with LIBSUMO_AS_TRACI); close it before creating a libsumo env."
                )
        _SLOT.owner, _SLOT.description = weakref.ref(owner), description


def release_libsumo(owner: Any) -> None:
    with _LOCK:
        holder = _SLOT.owner() if _SLOT.owner is not None else None
        if holder is owner or holder is None:
            _SLOT.owner, _SLOT.description, _SLOT.running = None, "", False


# ------------------------------------------------------------------------------------------------ back ends


class _CaptureStderr:
    """Capture the C++ library's writes to file descriptor 2 (libsumo prints load errors there)."""

    def __enter__(self) -> "_CaptureStderr":
        self.text = ""
        try:
            self._file = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._file.fileno(), 2)
        except OSError:  # no usable fd 2 (rare): run without capturing
            self._file = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is None:
            return
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode(errors="replace").strip()
        self._file.close()


def start_libsumo(cmd: Sequence[str]) -> Any:
    """Start the process's libsumo simulation; returns the libsumo module (the traci-like connection).

    Raises SumoLoadError quoting SUMO's own message (which names the file for XML errors).
    """
    import libsumo

    with _CaptureStderr() as captured:
        try:
            libsumo.start(list(cmd))
            error = None
        except Exception as err:  # noqa: BLE001  (libsumo raises TraCIException / FatalTraCIError)
            error = err
    if error is not None:
        if libsumo.isLoaded():
            try:
                libsumo.close()
            except Exception:  # noqa: BLE001
                pass
        raise SumoLoadError(_sumo_message(captured.text, error))
    _SLOT.running = True
    return libsumo


def close_libsumo() -> None:
    import libsumo

    try:
        if libsumo.isLoaded():
            libsumo.close()
    finally:
        _SLOT.running = False


def start_traci(cmd: Sequence[str], log_path: Path, timeout: float = 60.0) -> tuple[Any, subprocess.Popen]:
    """Start a SUMO subprocess and connect to it (unlabelled connection: no global traci state is touched)."""
    import sumolib
    import traci.main  # noqa: F401  (imports the domain modules a Connection registers; LIBSUMO_AS_TRACI skips it)
    from traci.connection import Connection

    for _attempt in range(3):  # a free port can be taken by another process before SUMO binds it
        port = sumolib.miscutils.getFreeSocketPort()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([*cmd, "--remote-port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                text = Path(log_path).read_text(errors="replace").strip()
                if "port" in text.lower() and "bind" in text.lower():
                    break  # retry with another port
                raise SumoLoadError(_sumo_message(text, f"SUMO exited with code {proc.returncode}"))
            try:
                conn = Connection("localhost", port, proc, None, True, None)
            except OSError:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise SumoError(
                        f"could not connect to SUMO (traci) on port {port} within {timeout:.0f} s"
                    ) from None
                time.sleep(0.02)
                continue
            try:
                conn.getVersion()
            except Exception as err:  # noqa: BLE001  (SUMO quit after accepting: a load error)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                raise SumoLoadError(_sumo_message(Path(log_path).read_text(errors="replace"), err)) from None
            return conn, proc
    raise SumoError("could not start SUMO (traci): no free port could be bound")


def close_traci(conn: Any, proc: subprocess.Popen | None) -> None:
    """Close the connection (SUMO then writes its outputs and exits); kill the process if it does not."""
    try:
        if conn is not None:
            conn.close(wait=True)
    except Exception:  # noqa: BLE001  (already dead: FatalTraCIError, OSError)
        try:
            conn._socket = None  # noqa: SLF001  (let the dead connection go without another send)
        except Exception:  # noqa: BLE001
            pass
    finally:
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _sumo_message(log_text: str, error: object) -> str:
    """SUMO's own error lines (they name the file for XML errors), else the exception's message."""
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip() and "pyarrow" not in ln]
    lines = [ln for ln in lines if not ln.startswith(("Warning", "Quitting", "Loading", "Retrying"))] or lines
    text = " ".join(lines).strip()
    err = str(error.args[0] if getattr(error, "args", None) else error)
    if not text:
        return err
    return text if err in ("Process Error", "") or err in text else f"{text} ({err})"
