"""MLflow tracking: one run per pipeline execution, spanning its stages.

The train stage creates the run and records its id; threshold and evaluate reopen it. A stage
that runs with settings the run was not created with (a scoring-only change re-runs threshold
and evaluate, not train) forks a new run that carries the training curve over, because MLflow
params cannot change. Everything goes through ``MlflowClient`` with explicit run ids: no
fluent ``mlflow.log_*`` call that could open a second, implicit run.

With a server URI every call goes through one guard (:meth:`Tracker.call`): it ends within a
deadline whatever MLflow's retries, and the first call the server does not answer marks the
tracker lost, so the stage stops with one line naming the URI and every later call (the run's
FAILED mark, Lightning's teardown) fails at once instead of waiting again.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from kddad.config import Config, TrackingConfig
from kddad.config.changes import changes, flatten, in_short, overrides
from kddad.errors import Interrupted, TrackingError, interrupts_deferred
from kddad.paths import project_root

log = logging.getLogger(__name__)

TRACKED_CURVES = ("train_loss", "val_loss", "epoch")


def is_curve(key: str) -> bool:
    """A training curve's metric: ``val_loss``, or a fusion member's own, ``vae.val_loss``."""
    label, _, name = key.rpartition(".")
    return name in TRACKED_CURVES and "." not in label


#: A sweep's command line, set by the process that launches it for its jobs (which may run in
#: worker processes of their own: joblib, Ray), so that each job's run names the command
COMMAND_ENV = "KDDAD_COMMAND"
#: Where ``mlflow ui`` serves a local store unless told otherwise (its --host and --port defaults)
LOCAL_UI = "http://127.0.0.1:5000"
#: A local store's artifacts, in this folder beside its database (and relative to it in the store)
ARTIFACTS_DIR = "mlartifacts"
#: Tag naming the process that holds a RUNNING run (host:pid:start time), to close orphans.
OWNER_TAG = "kddad.process"
#: Without it the MLflow UI infers the experiment's kind and may open it in the GenAI view.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
PROBE_TIMEOUT_S = 5.0
#: How long one tracking call to a server may take in all, retries included (seconds).
DEADLINE_ENV = "KDDAD_TRACKING_DEADLINE"
DEADLINE_S = 30.0
MODEL_DEADLINE_FACTOR = 4
#: The bound on a call made while a stage is already ending (marking its run FAILED or KILLED).
CLEANUP_DEADLINE_S = 5.0
#: MLflow's REST client retries each call 7 times with a backoff factor of 2 and a 120 s timeout
#: (minutes per call). These bounds (one attempt and two retries, 10 s each, 0 + 2 s backoff)
#: fit the deadline, set only while a call runs (:func:`client_bounds`); a user's own settings win.
CLIENT_BOUNDS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
#: The tag of a DVC stage's run that holds what it changes against the committed params.yaml.
PARAMS_CHANGED_TAG = "params_changed"
#: Proxies' answers that mean the server behind them is gone (a 500 is the server answering).
GONE_STATUS = frozenset({502, 503, 504})


class _QuietRetries(logging.Filter):
    """urllib3 warns at each retry of a call to a server that went away; the guard's one line says
    how the call ended. Shown at DEBUG (``-v``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Retrying") or logging.getLogger().isEnabledFor(logging.DEBUG)


_QUIET_RETRIES = _QuietRetries()
T = TypeVar("T")
_in_call = threading.local()  # set in the worker thread of a guarded call: nested calls run directly


def _sqlite_store(uri: str) -> tuple[Path | None, str]:
    """(folder, file name) of a ``sqlite:///`` store's database (absolute), or (None, "")."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None, ""
    db = Path(uri[len(prefix) :]).resolve()
    return db.parent, db.name


def resolve_uri(uri: str, root: str | Path | None = None) -> str:
    """A relative ``sqlite:///file`` resolves against the project root (``root``, default
    :func:`~kddad.paths.project_root`: ``DVC_ROOT`` or the folder holding ``dvc.yaml``), never a
    job's output folder. Absolute and server URIs are returned unchanged."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        base = project_root() if root is None else Path(root).resolve()
        return prefix + str(base / uri[len(prefix) :])
    return uri


def _probe(uri: str) -> None:
    """Fail in seconds when no server answers at an http(s) URI (MLflow itself retries for minutes)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # something answered: MLflow's own calls will say what is wrong
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise TrackingError(
            f"tracking.uri {uri}: no MLflow server answers ({reason}); start the server, "
            "correct tracking.uri, or set tracking.enabled=false"
        ) from None


def _deadline() -> float:
    raw = os.environ.get(DEADLINE_ENV)
    if not raw:
        return DEADLINE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise TrackingError(f"{DEADLINE_ENV}={raw!r}: expected a number of seconds above 0")
    return value


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions it was raised from or while handling, each once."""
    seen: list[BaseException] = []
    todo = [err]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    return seen


def server_gone(err: BaseException) -> str | None:
    """Why ``err`` says the server did not answer (refused, reset, timed out, a proxy's 502-504),
    or None for an answer that refused the call (a 4xx, an MLflow error the server sent back).

    MLflow wraps what ``requests`` raised in an ``MlflowException`` ("API request to ... failed
    with exception ..."), so the cause is looked for down the exception's chain.
    """
    import requests

    for e in _chain(err):
        if isinstance(e, requests.exceptions.RetryError):  # retries used up on an answer's status
            found = re.search(r"too many (\d+) error responses", str(e))
            status = int(found.group(1)) if found else None
            return f"HTTP {status} answers" if status in GONE_STATUS else None
        if isinstance(e, requests.exceptions.HTTPError):
            status = e.response.status_code if e.response is not None else None
            return f"HTTP {status}" if status in GONE_STATUS else None
    for e in _chain(err):
        if isinstance(e, (requests.exceptions.Timeout, TimeoutError)):
            return "timed out"
        if isinstance(e, (requests.exceptions.RequestException, ConnectionError)):
            found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(e))
            return found.group(1).strip() if found else type(e).__name__
    return None


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def owner() -> str:
    """This process, as ``host:pid:start time`` (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def _owner_gone(tag: str) -> bool:
    """Whether the process a RUNNING run's tag names is known to have died (same host only)."""
    host, _, rest = tag.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: we cannot tell
    return str(_process_start(int(pid))) != started


def _git_commit(root: Path) -> tuple[str | None, bool]:
    """(HEAD commit, whether tracked files differ from it)."""
    try:
        head = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
        return head, dirty
    except (OSError, subprocess.SubprocessError):
        return None, False


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry or USER set
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def command_line() -> list[str]:
    """The command that runs this pipeline, its script relative to the working folder: a sweep's own
    (:data:`COMMAND_ENV`, for jobs in worker processes), else this process's."""
    if os.environ.get(COMMAND_ENV):
        return shlex.split(os.environ[COMMAND_ENV])
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("-")
    try:
        script = script.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return ["python", str(script), *sys.argv[1:]]


def described(cfg: Config | None, overrides: str = "", changed: list[str] | None = None) -> dict[str, str]:
    """The tags MLflow's UI shows as a run's source, user and description: the script that ran, who
    ran it, and the command, the sweep job's overrides or what the run changes against the
    committed params.yaml (``changed``), and the model (``cfg``; None for a sweep's parent run,
    whose jobs each say theirs)."""
    argv = command_line()
    script = argv[1] if len(argv) > 1 else argv[0]
    command = shlex.join(argv)
    if os.environ.get("DVC_EXP_NAME"):
        command += f" (DVC experiment {os.environ['DVC_EXP_NAME']})"
    note = [f"Command: `{command}`"]
    if overrides:
        note.append(f"Overrides: `{overrides}`")
    if changed is not None:
        note.append(
            f"Against the committed params.yaml: `{' '.join(changed)}`" if changed else "The committed params.yaml"
        )
    if cfg is None:
        note.append("A sweep: a child run per job; the comparison of its configurations in summary/")
    else:
        note.append(
            f"Model: {cfg.model.architecture}, {cfg.score.name} score, on {cfg.dataset.name} "
            f"({cfg.split.protocol} split)"
        )
    return {
        "mlflow.source.name": script,
        "mlflow.source.type": "LOCAL",
        "mlflow.user": _user(),
        "mlflow.note.content": "\n\n".join(note),
    }


def dataset_identity(data: Mapping[str, Any]) -> tuple[str, str]:
    """The (name, digest) MLflow knows a raw file by (:meth:`Tracker.log_dataset`'s ``data``)."""
    return str(data["name"]), str(data["sha256"])[:16]


def file_schema() -> list[dict[str, Any]]:
    """The raw files' columns in MLflow's column-spec form: the 41 features, then the label."""
    from kddad.data import fields

    cols = [{"type": "string" if c in fields.CATEGORICAL else "double", "name": c} for c in fields.FEATURES]
    return [*cols, {"type": "string", "name": fields.LABEL}]


class _Bounds:
    """The :func:`client_bounds` blocks open (in any thread), and what they set."""

    lock = threading.Lock()
    depth = 0
    set: tuple[str, ...] = ()


@contextmanager
def client_bounds() -> Iterator[None]:
    """:data:`CLIENT_BOUNDS` in the environment (where the user has not set them) while the
    block runs, for the MLflow calls in it to read: not before, not after, so no child process
    (a served model, a Ray worker) and no other code of the process inherits them."""
    with _Bounds.lock:
        if _Bounds.depth == 0:
            _Bounds.set = tuple(n for n in CLIENT_BOUNDS if n not in os.environ)
            os.environ.update({n: CLIENT_BOUNDS[n] for n in _Bounds.set})
        _Bounds.depth += 1
    try:
        yield
    finally:
        with _Bounds.lock:
            _Bounds.depth -= 1
            if _Bounds.depth == 0:
                for name in _Bounds.set:
                    os.environ.pop(name, None)
                _Bounds.set = ()


class Tracker:
    """The tracking store of one pipeline (``tracking`` config), or a no-op when disabled."""

    def __init__(self, cfg: TrackingConfig, root: str | Path | None = None) -> None:
        """``root``: the project root a relative sqlite URI resolves against (default: found)."""
        self.cfg = cfg
        self.root = project_root() if root is None else Path(root).resolve()
        self.enabled = cfg.enabled
        self.uri = resolve_uri(cfg.uri, self.root)
        self.remote = self.uri.startswith(("http://", "https://"))
        self.deadline = _deadline() if self.remote else DEADLINE_S
        if self.enabled and self.remote:
            logging.getLogger("urllib3.connectionpool").addFilter(_QUIET_RETRIES)
        self.cleanup_deadline = min(CLEANUP_DEADLINE_S, self.deadline)
        #: Logging the detector as a model: a dozen calls and local work (saving, checking) in one
        self.model_deadline = MODEL_DEADLINE_FACTOR * self.deadline
        #: Why the server was given up on (its first unanswered call); then every call fails at once.
        self.lost: str | None = None
        self._client = None
        self._experiment: str | None = None  # the experiment's id, once connect() found it
        #: A SQLite store's folder (its artifacts are kept in mlartifacts/ there), else None
        self.store_dir, self.store_file = _sqlite_store(self.uri)

    def call(self, fn: Callable[..., T], *args: Any, deadline: float | None = None, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, a call to the tracking store, within a deadline.

        Local stores are called directly, a signal's :class:`~kddad.errors.Interrupted` held until
        the call returns. With a server, the call runs in a worker thread and is
        waited for at most ``deadline`` seconds (default: ``KDDAD_TRACKING_DEADLINE``, 30); an
        unanswered call (refused, reset, timed out) marks the tracker lost and raises one
        :class:`TrackingError` naming the URI, and every later call raises it at once. A signal
        interrupts the wait. An answer that refuses the call (an MLflow error) passes through.
        """
        if not self.remote:
            with interrupts_deferred():  # a commit cut by a signal would keep the store locked
                return fn(*args, **kwargs)
        if getattr(_in_call, "active", False):
            return fn(*args, **kwargs)
        if self.lost:
            raise TrackingError(self.lost)
        limit = self.deadline if deadline is None else deadline
        outcome: dict[str, Any] = {}
        done = threading.Event()
        context = contextvars.copy_context()

        def work() -> None:
            _in_call.active = True
            try:
                outcome["value"] = context.run(fn, *args, **kwargs)
            except BaseException as err:  # handed to the waiting thread
                outcome["error"] = err
            finally:
                done.set()

        with client_bounds():
            # a daemon: a call given up on never holds the process at exit
            threading.Thread(target=work, name="kddad-tracking", daemon=True).start()
            answered = done.wait(limit)
        if not answered:
            self._lose(f"no answer within {limit:g} s")
        if "error" in outcome:
            err = outcome.pop("error")
            reason = server_gone(err)
            if reason:
                self._lose(reason)
            raise err
        return outcome["value"]

    def _lose(self, reason: str) -> None:
        self.lost = (
            f"tracking.uri {self.uri}: the MLflow server stopped answering ({reason}); stopped with the local "
            "outputs kept as they were; the MLflow run stays RUNNING there until the next tracked execution "
            "that reaches the server marks it KILLED; restart the server (or set tracking.enabled=false) "
            "and run it again"
        )
        log.debug("tracking server lost: %s", reason)
        raise TrackingError(self.lost) from None

    def connect(self) -> Tracker:
        """Check the store answers, before any work, and close runs orphaned by killed processes.

        A server URI that does not answer fails in seconds, naming the URI. A RUNNING run whose
        process (on this machine) is gone, e.g. after ``kill -9`` of a stage, is marked KILLED.
        """
        if not self.enabled:
            return self
        if self.uri.startswith(("http://", "https://")):
            _probe(self.uri)
        try:
            exp = self._experiment = self.experiment_id()
            running = self.client.search_runs([exp], "attributes.status = 'RUNNING'", max_results=1000)
        except TrackingError:
            raise
        except Exception as err:  # MlflowException, sqlite errors: say which store
            raise TrackingError(
                f"tracking.uri {self.uri}: the MLflow store cannot be used "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
            ) from None
        for run in running:
            tag = run.data.tags.get(OWNER_TAG)
            if tag and _owner_gone(tag):
                self.client.set_tag(run.info.run_id, "kddad.closed", f"process {tag} ended without closing it")
                self.client.set_terminated(run.info.run_id, "KILLED")
                log.warning(
                    "MLflow run %s was left RUNNING by process %s, which is gone: marked KILLED", run.info.run_id, tag
                )
        return self

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = _GuardedClient(self, MlflowClient(tracking_uri=self.uri))
        return self._client

    def experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.cfg.experiment)
        if exp is not None:
            if not set(EXPERIMENT_KIND.items()) <= set(exp.tags.items()):
                for k, v in EXPERIMENT_KIND.items():
                    self.client.set_experiment_tag(exp.experiment_id, k, v)
            return exp.experiment_id
        # a local store keeps artifacts beside the database, not in whatever folder the stage ran in
        location = None
        if self.store_dir:
            location = (self.store_dir / ARTIFACTS_DIR).as_uri()
        elif self.uri.startswith(("file:", "/")):  # a file store: MLflow's own layout, absolute
            from urllib.parse import urlparse

            store = Path(urlparse(self.uri).path if ":" in self.uri else self.uri)
            location = (store.parent / ARTIFACTS_DIR).resolve().as_uri()
        exp = self.client.create_experiment(self.cfg.experiment, artifact_location=location, tags=EXPERIMENT_KIND)
        if self.store_dir:
            self._relocate(exp)
        return exp

    def _relocate(self, experiment_id: str) -> None:
        """Make a new experiment's artifact location relative to the store's folder, so that the
        project can be moved or cloned with its runs' artifacts (``mlflow ui`` resolves it against the
        folder it is started in: the project root). MLflow makes every local location absolute when it
        creates an experiment and offers no call to change it, so it is set in the store's table; runs
        created later inherit it."""
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.store_dir / self.store_file, timeout=30)) as db, db:
            db.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                (ARTIFACTS_DIR, int(experiment_id)),
            )

    @contextmanager
    def at_store(self) -> Iterator[None]:
        """Resolve relative artifact locations against the store's folder for the block (the working
        folder, which MLflow resolves them against, is changed and restored); a no-op for a server."""
        if not self.store_dir:
            yield
            return
        previous = os.getcwd()
        os.chdir(self.store_dir)
        try:
            yield
        finally:
            os.chdir(previous)

    def params(self, cfg: Config) -> dict[str, str]:
        return {k: str(v) for k, v in flatten(cfg.model_dump()).items()}

    def tags(self, cfg: Config) -> dict[str, str]:
        tags = {
            "dataset": cfg.dataset.name,
            "features": cfg.features.name,
            "model": cfg.model.name,
            "architecture": cfg.model.architecture,
            "score": cfg.score.name,
            "split": cfg.split.protocol,
        }
        commit, dirty = _git_commit(self.root)
        if commit:
            tags["mlflow.source.git.commit"] = commit
            tags["git_dirty"] = str(dirty).lower()
        if os.environ.get("DVC_EXP_NAME"):
            tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
        return tags

    def start(self, cfg: Config, parent: str | None = None, tags: Mapping[str, str] | None = None) -> str | None:
        """Create the run of a pipeline execution, with the whole config as params.

        ``parent``: a sweep's run; the new run is nested under it (MLflow's parent tag).
        """
        if not self.enabled:
            return None
        from mlflow.entities import Param

        all_tags = {**self.tags(cfg), **(tags or {}), OWNER_TAG: owner()}
        identity = f"{cfg.features.name} {cfg.model.architecture} {cfg.score.name}"
        if "overrides" in all_tags:  # a Hydra job: by what it changed (unique within its sweep)
            changed = None
            name = all_tags["overrides"] or identity
        else:  # a DVC stage: by what it changes against the committed params.yaml, then what it is
            against = changes(cfg, self.root)
            changed = None if against is None else overrides(against)
            name = identity if against is None else f"{' '.join(in_short(against)) or 'defaults'} · {identity}"
            if changed:
                all_tags[PARAMS_CHANGED_TAG] = " ".join(changed)
        all_tags.update(described(cfg, all_tags.get("overrides", ""), changed))
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(self.experiment_id(), tags=all_tags, run_name=name)
        run_id = run.info.run_id
        params = [Param(k, v) for k, v in self.params(cfg).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a call
            self.client.log_batch(run_id, params=params[i : i + 100])
        log.info("MLflow run %s in %s (experiment %r)", run_id, self.uri, self.cfg.experiment)
        return run_id

    def resume(self, run_id: str | None, cfg: Config, logs: str) -> str | None:
        """Reopen ``run_id`` for a later stage that logs metric ``logs``, or fork a new run.

        Forks (a new run carrying the training curve, tagged ``forked_from``) when the run was made
        with other settings (MLflow params cannot change), already holds ``logs`` (the stage runs
        again: a new execution), or belongs to another DVC experiment (DVC restored this stage's
        inputs from its run cache).
        """
        if not self.enabled:
            return None
        if run_id:
            try:
                run = self.client.get_run(run_id)
            except TrackingError:
                raise
            except Exception as err:  # the store was moved or wiped: start afresh
                log.warning("MLflow run %s not found in %s (%s); starting a new run", run_id, self.uri, err)
                return self.start(cfg)
            same_exp = run.data.tags.get("dvc_experiment") == os.environ.get("DVC_EXP_NAME")
            if run.data.params == self.params(cfg) and logs not in run.data.metrics and same_exp:
                self.client.update_run(run_id, status="RUNNING")
                self.client.set_tag(run_id, OWNER_TAG, owner())
                return run_id
        parent = run.data.tags.get("mlflow.parentRunId") if run_id else None
        extra = {k: v for k, v in run.data.tags.items() if k in ("sweep_id", "overrides", "job")} if run_id else {}
        new = self.start(cfg, parent=parent, tags=extra)
        if run_id and new:
            self.client.set_tag(new, "forked_from", run_id)
            from mlflow.entities import Metric

            curve = [
                Metric(m.key, m.value, m.timestamp, m.step)
                for key in run.data.metrics
                if is_curve(key)
                for m in self.client.get_metric_history(run_id, key)
            ]
            if curve:
                self.client.log_batch(new, metrics=curve)
        return new

    @contextmanager
    def stage_run(
        self,
        cfg: Config,
        *,
        resume: str | None = None,
        logs: str | None = None,
        parent: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[str | None]:
        """A stage's MLflow run, from start to end: FINISHED when the block ends, FAILED on an error,
        KILLED on a signal (:class:`~kddad.errors.Interrupted`).

        Without ``logs``: a new run (``train``; nested under ``parent`` in a sweep). With ``logs``
        (the metric the stage writes): ``resume``'s run reopened, or forked (see :meth:`resume`).
        Yields the run id, or None when tracking is off. Once the server is lost the run cannot be
        marked: it stays RUNNING there until the next execution's orphan sweep (:meth:`connect`).
        """
        run_id = self.resume(resume, cfg, logs) if logs else self.start(cfg, parent=parent, tags=tags)
        try:
            yield run_id
        except BaseException as err:
            self._close_failed(run_id, "KILLED" if isinstance(err, Interrupted) else "FAILED")
            raise
        self.finish(run_id)

    def _close_failed(self, run_id: str | None, status: str) -> None:
        """Mark a run that an error ended, briefly; never hides that error behind a tracking one."""
        if not run_id or self.lost:
            return
        try:
            self.call(self.client.set_terminated, run_id, status, deadline=self.cleanup_deadline)
        except TrackingError as err:
            log.warning("MLflow run %s could not be marked %s: %s", run_id, status, err)

    def log_metrics(
        self,
        run_id: str | None,
        metrics: Mapping[str, Any],
        step: int = 0,
        model_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """``metrics`` (nested dicts flattened to dotted keys) into ``run_id``; with ``model_id``, also
        the logged model's, computed on ``data`` (:meth:`log_dataset`'s): MLflow's Models tab shows
        them beside that model with the data set's name."""
        if not run_id:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        name, digest = dataset_identity(data) if data and model_id else (None, None)
        batch = [
            Metric(k, float(v), now, step, model_id=model_id, dataset_name=name, dataset_digest=digest)
            for k, v in flatten(metrics).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(run_id, metrics=batch[i : i + 1000])

    def log_artifact(self, run_id: str | None, path: Path, artifact_path: str | None = None) -> None:
        if run_id:
            source = str(Path(path).resolve())
            with self.at_store():
                self.client.log_artifact(run_id, source, artifact_path)

    def log_dataset(
        self, run_id: str | None, data: Mapping[str, Any], context: str, file_rows: int | None = None
    ) -> None:
        """Record the raw file a run used as an MLflow dataset input (name, digest from its sha256,
        source, the file's columns as its schema), so the runs table shows which data each run saw.

        Its profile's ``rows`` is the file's (``file_rows``: the ``dataset.rows`` param, where the
        config pins it), ``training_rows`` those the detector was fitted on (``data["rows"]``).
        """
        if not run_id or not data.get("sha256"):
            return
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        source = str(data.get("source") or data["file"])
        remote = source.startswith(("http://", "https://"))
        name, digest = dataset_identity(data)
        profile = {k: data[k] for k in ("file", "sha256", "split", "split_seed") if k in data}
        if file_rows is not None:
            profile["rows"] = file_rows
        if "rows" in data:
            profile["training_rows"] = data["rows"]
        dataset = Dataset(
            name=name,
            digest=digest,
            source_type="http" if remote else "local",
            source=json.dumps({"url": source} if remote else {"uri": source}),
            schema=json.dumps({"mlflow_colspec": file_schema()}),
            profile=json.dumps(profile),
        )
        tag = InputTag("mlflow.data.context", context)
        from mlflow.exceptions import MlflowException

        for attempt in range(1, 4):
            try:
                self.client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[tag])])
                return
            except MlflowException as err:
                # parallel jobs (joblib, SLURM) record the same data set at once: the store's unique
                # key lets one insert win and the others fail; the next try links the row that won
                if attempt == 3:
                    log.warning("MLflow run %s: the dataset input was not recorded (%s)", run_id, err)
                    return
                time.sleep(0.2 * attempt)

    def ui_links(self, run_id: str) -> tuple[str, str]:
        """Where to look at ``run_id`` in MLflow's UI: its experiment's runs table, opened on the
        classic ML view (MLflow 3 opens an experiment on its GenAI overview otherwise), and the
        run's own page. A server's own address; for a local store, that of ``mlflow ui``'s default
        (:data:`LOCAL_UI`)."""
        base = self.uri.rstrip("/") if self.remote else LOCAL_UI
        experiment = f"{base}/#/experiments/{self._experiment or self.experiment_id()}"
        return f"{experiment}/runs?workflowType=machine_learning", f"{experiment}/runs/{run_id}"

    def finish(self, run_id: str | None, status: str = "FINISHED") -> None:
        if run_id:
            self.client.set_terminated(run_id, status)

    def fail(self, run_id: str | None, err: BaseException) -> None:
        """Mark ``run_id`` FAILED with the error that ended it (a tag), e.g. a sweep's failed job."""
        if run_id:
            self.set_tag(run_id, "error", f"{type(err).__name__}: {err}"[:5000])
            self.finish(run_id, "FAILED")

    def set_tag(self, run_id: str | None, key: str, value: str) -> None:
        if run_id:
            self.client.set_tag(run_id, key, value)

    def open_parent(self, name: str, tags: Mapping[str, str]) -> str | None:
        """A sweep's parent run (no params: its jobs carry theirs); None when tracking is off."""
        if not self.enabled:
            return None
        all_tags = {**tags, **described(None, tags.get("sweep", "")), OWNER_TAG: owner()}
        return self.client.create_run(self.experiment_id(), run_name=name, tags=all_tags).info.run_id

    def child_runs(self, parent: str) -> list:
        """The runs nested under ``parent`` (a sweep's jobs), as MLflow ``Run`` objects."""
        query = f"tags.mlflow.parentRunId = '{parent}'"
        return self.client.search_runs([self.experiment_id()], query, max_results=10000)

    def log_model(self, run_id: str, log: Callable[[], T]) -> T:
        """Run ``log`` (an MLflow ``log_model`` call) into ``run_id``, under the model deadline.

        MLflow's model logging reads the global tracking URI and the active run; this is the one
        place that sets them, and only for the call.
        """

        def scoped() -> T:
            import mlflow

            previous = mlflow.get_tracking_uri()
            mlflow.set_tracking_uri(self.uri)
            try:
                with self.at_store(), mlflow.start_run(run_id=run_id):
                    return log()
            finally:
                mlflow.set_tracking_uri(previous)

        return self.call(scoped, deadline=self.model_deadline)

    def lightning_logger(self, run_id: str | None):
        """Lightning's MLFlowLogger attached to ``run_id`` (per-epoch losses), or False; its calls go
        through :meth:`call`, so a lost server stops training at the next epoch's log and Lightning's
        teardown (``finalize("failed")``) does not wait for it again."""
        if not run_id:
            return False
        from pytorch_lightning.loggers import MLFlowLogger

        tracker = self

        class GuardedMLFlowLogger(MLFlowLogger):
            @property
            def experiment(self):
                return tracker.call(MLFlowLogger.experiment.fget, self)

            def log_hyperparams(self, params) -> None:
                tracker.call(super().log_hyperparams, params)

            def log_metrics(self, metrics, step=None) -> None:
                tracker.call(super().log_metrics, metrics, step)

            def finalize(self, status: str = "success") -> None:
                if status != "failed":
                    tracker.call(super().finalize, status)
                    return
                # an error is ending training: brief, and never an error of its own, which would
                # skip Lightning's teardown (its signal handlers stay installed)
                if not tracker.lost:
                    try:
                        tracker.call(super().finalize, status, deadline=tracker.cleanup_deadline)
                    except TrackingError:
                        pass  # lost now; the run's own close says so

        return GuardedMLFlowLogger(experiment_name=self.cfg.experiment, tracking_uri=self.uri, run_id=run_id)


class _GuardedClient:
    """An ``MlflowClient`` whose every method goes through :meth:`Tracker.call`."""

    def __init__(self, tracker: Tracker, client: Any) -> None:
        self._tracker, self._real = tracker, client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self._tracker.call(attr, *args, **kwargs)

        guarded.__name__ = name
        return guarded
