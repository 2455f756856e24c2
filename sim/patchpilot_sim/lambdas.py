"""In-process Lambda: the template's handlers, invoked with their own environment, as the Lambda service would."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from patchpilot_sim.template import FunctionSpec

# One lock for the whole process: handlers read os.environ, and a runtime that is shutting down (a test's) may still
# finish an invocation while the next runtime starts one.
ENVIRONMENT_LOCK = threading.RLock()


class ThreadRoutedStream(io.TextIOBase):
    """A sys.stdout/sys.stderr stand-in that sends what a handler writes to the Lambda log, on that thread only.

    contextlib.redirect_stdout would swap the stream for every thread (the operator's progress view included).
    """

    _local = threading.local()

    def __init__(self, fallback: IO[str]) -> None:
        self.fallback = fallback

    @classmethod
    @contextlib.contextmanager
    def routed_to(cls, stream: IO[str]) -> Iterator[None]:
        previous = getattr(cls._local, "stream", None)
        cls._local.stream = stream
        try:
            yield
        finally:
            cls._local.stream = previous

    def _target(self) -> IO[str]:
        return getattr(self._local, "stream", None) or self.fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self.fallback.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.fallback, "encoding", "utf-8")


class RuntimeCrash(BaseException):
    """The function's process died mid-invocation (what Lambda reports as `Runtime.ExitError`).

    A BaseException, like SystemExit: no `except Exception` in the handler can catch it, as none could catch a dying
    process.
    """

    lambda_error_type = "Runtime.ExitError"


# `.name`: the function whose handler runs on this thread, if any; `.request_id`; `.backoff_seconds`: simulated
# seconds its SDK spent in retry backoff so far (moto_clock.SdkBackoffPatch)
CURRENT_FUNCTION = threading.local()


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    timeout_seconds: float = 30.0
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000), 0)


@dataclass(frozen=True)
class InvocationResult:
    """What an invocation returned: a payload, or an error the way Lambda reports an unhandled exception."""

    function: str
    payload: Any
    error_type: str | None = None
    error_message: str | None = None
    sdk_backoff_seconds: float = 0.0  # simulated seconds the invocation's SDK waited between attempts

    @property
    def failed(self) -> bool:
        return self.error_type is not None

    def error_payload(self) -> dict[str, Any]:
        return {"errorType": self.error_type, "errorMessage": self.error_message}


@dataclass
class InvocationRecord:
    function: str
    duration_ms: float
    error_type: str | None


class InProcessLambda:
    """Invokes the template's functions in this process, one at a time (like one warm container each)."""

    def __init__(
        self,
        functions: dict[str, FunctionSpec],
        resolve_env: Callable[[FunctionSpec], dict[str, str]],
        arn_of: Callable[[str], str],
        log_stream: IO[str],
    ) -> None:
        self.functions = functions
        self._resolve_env = resolve_env
        self._arn_of = arn_of
        self._log = log_stream
        self._lock = ENVIRONMENT_LOCK
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self.records: list[InvocationRecord] = []
        self._declared_keys: list[str] = []
        self._saved_environment: dict[str, str | None] = {}
        self.on_invoke: list[Callable[[str, Any, InvocationResult], None]] = []

    def function_for(self, name_or_arn: str) -> FunctionSpec:
        name = name_or_arn.split(":function:")[-1].split(":")[0]
        if name not in self.functions:
            raise KeyError(f"no function {name!r} in template.yaml")
        return self.functions[name]

    def preload(self) -> None:
        """Import every handler now (fails fast on a wrong Handler path; no cold start inside a timed cycle)."""
        self.declare_environment()
        for spec in self.functions.values():
            with self._lock, self._environment(spec), ThreadRoutedStream.routed_to(self._log):
                self._handler(spec)

    def _handler(self, spec: FunctionSpec) -> Callable[[Any, Any], Any]:
        if spec.logical_id not in self._handlers:
            module_name, attribute = spec.handler.rsplit(".", 1)
            code_root = str(spec.code_uri.resolve())
            if code_root not in sys.path:
                sys.path.insert(0, code_root)
            self._handlers[spec.logical_id] = getattr(importlib.import_module(module_name), attribute)
        return self._handlers[spec.logical_id]

    @contextlib.contextmanager
    def _environment(self, spec: FunctionSpec) -> Iterator[None]:
        """Give the process the function's environment by changing values only, never adding or removing keys.

        Other threads (boto3 creating a client reads every variable) iterate os.environ while a handler runs: a key
        removed under them is a KeyError. So every variable any function declares is set once (to "" when the
        function does not declare it: a settings model then rejects it, as a missing variable would fail in Lambda).
        """
        env = self._resolve_env(spec)
        for key in self._declared_keys:
            os.environ[key] = env.get(key, "")
        yield

    def declare_environment(self) -> None:
        """Set every variable any function declares (empty), once, before handlers run."""
        keys: set[str] = set()
        for spec in self.functions.values():
            keys.update(self._resolve_env(spec))
        with self._lock:
            self._saved_environment = {key: os.environ.get(key) for key in keys}
            for key in keys:
                os.environ.setdefault(key, "")
        self._declared_keys = sorted(keys)

    def restore_environment(self) -> None:
        """Put the process environment back as it was before `declare_environment`."""
        with self._lock:
            for key, value in self._saved_environment.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def invoke(self, name_or_arn: str, event: Any) -> InvocationResult:
        spec = self.function_for(name_or_arn)
        context = LambdaContext(function_name=spec.logical_id, invoked_function_arn=self._arn_of(spec.logical_id))
        started = time.perf_counter()
        with self._lock, self._environment(spec), ThreadRoutedStream.routed_to(self._log):
            CURRENT_FUNCTION.name = spec.logical_id
            CURRENT_FUNCTION.request_id = context.aws_request_id
            CURRENT_FUNCTION.backoff_seconds = 0.0
            try:
                handler = self._handler(spec)
                payload = handler(json.loads(json.dumps(event)), context)
                result = InvocationResult(function=spec.logical_id, payload=json.loads(json.dumps(payload)))
            except (Exception, RuntimeCrash) as error:
                buffer = io.StringIO()
                traceback.print_exc(file=buffer)
                self._log.write(buffer.getvalue())
                result = InvocationResult(
                    function=spec.logical_id,
                    payload=None,
                    error_type=getattr(error, "lambda_error_type", type(error).__name__),
                    error_message=str(error),
                )
            finally:
                backoff = float(getattr(CURRENT_FUNCTION, "backoff_seconds", 0.0) or 0.0)
                CURRENT_FUNCTION.name = CURRENT_FUNCTION.request_id = None
                CURRENT_FUNCTION.backoff_seconds = 0.0
        result = dataclasses.replace(result, sdk_backoff_seconds=backoff)
        self.records.append(
            InvocationRecord(spec.logical_id, (time.perf_counter() - started) * 1000, result.error_type)
        )
        for callback in self.on_invoke:
            callback(spec.logical_id, event, result)
        return result
