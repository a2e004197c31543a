"""Server metrics in the Prometheus text exposition format (version 0.0.4), written by hand."""
from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "paddle_tag"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Histogram:
    """A cumulative-bucket histogram (``_bucket{le=...}``, ``_sum``, ``_count``)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # last slot: above every bound (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        """The exposition lines of this histogram under ``name``."""
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts):
            running += n
            out.append(f'{name}_bucket{{le="{_fmt(bound)}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {_fmt(self.sum)}")
        out.append(f"{name}_count {self.count}")
        return out


class Metrics:
    """Counters and histograms for the server; thread-safe (the model runs in a worker thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.texts = 0
        self.truncated = 0
        self.rejected_queue_full = 0
        self.model_errors = 0
        self.client_disconnects = 0
        self.body_timeouts = 0
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.request_latency = Histogram(LATENCY_BUCKETS)
        self.batch_latency = Histogram(LATENCY_BUCKETS)
        self.queue_depth: Callable[[], int] = lambda: 0
        self.ready: Callable[[], bool] = lambda: False
        # the server's connection guard (deploy.connections), when it runs under one
        self.connections: Callable[[], dict[str, int]] | None = None

    def observe_request(self, status: int, seconds: float) -> None:
        """One finished ``POST /predict`` or ``POST /recommend`` with its HTTP status and latency."""
        with self._lock:
            key = str(status)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.request_latency.observe(seconds)

    def observe_batch(self, size: int, seconds: float, truncated: int) -> None:
        """One model call on ``size`` texts."""
        with self._lock:
            self.texts += size
            self.truncated += truncated
            self.batch_size.observe(size)
            self.batch_latency.observe(seconds)

    def count_queue_full(self) -> None:
        """One request turned away because the queue was full."""
        with self._lock:
            self.rejected_queue_full += 1

    def count_model_error(self) -> None:
        """One model call that raised."""
        with self._lock:
            self.model_errors += 1

    def count_client_disconnect(self) -> None:
        """One request whose client hung up while the app read its body (not answered, not in requests_total)."""
        with self._lock:
            self.client_disconnects += 1

    def count_body_timeout(self) -> None:
        """One request answered 408: its body did not arrive within the read timeout."""
        with self._lock:
            self.body_timeouts += 1

    def render(self) -> str:
        """The whole exposition text."""
        p = PREFIX
        guard = self.connections() if self.connections is not None else {}
        with self._lock:
            lines = [f"# HELP {p}_requests_total POST /predict and /recommend requests by HTTP status.",
                     f"# TYPE {p}_requests_total counter"]
            lines += [f'{p}_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
            for name, value, text in (
                    ("texts_total", self.texts, "Texts run through the model."),
                    ("truncated_texts_total", self.truncated,
                     "Texts not read whole (cut at max_seq_len tokens, or past max_windows windows or max_chars)."),
                    ("queue_full_total", self.rejected_queue_full, "Requests refused with 503 (queue full)."),
                    ("model_errors_total", self.model_errors, "Model calls that raised."),
                    ("client_disconnects_total", self.client_disconnects + guard.get("client_disconnects", 0),
                     "Requests whose client hung up before the whole request arrived (not in requests_total).")):
                lines += [f"# HELP {p}_{name} {text}", f"# TYPE {p}_{name} counter", f"{p}_{name} {value}"]
            for name, hist, text in (
                    ("batch_size", self.batch_size, "Texts per model call."),
                    ("request_latency_seconds", self.request_latency, "POST /predict and /recommend latency."),
                    ("batch_latency_seconds", self.batch_latency, "Model call latency (tokenize + run).")):
                lines += [f"# HELP {p}_{name} {text}", f"# TYPE {p}_{name} histogram"] + hist.lines(f"{p}_{name}")
        lines += [f"# HELP {p}_read_timeouts_total Requests that did not arrive within --read-timeout: "
                  'phase="request" held by the server until complete (headers and a body up to 64 KiB; closed, '
                  '408 when begun), phase="body" a larger or chunked body the app was reading (408).',
                  f"# TYPE {p}_read_timeouts_total counter",
                  f'{p}_read_timeouts_total{{phase="request"}} {guard.get("read_timeouts", 0)}',
                  f'{p}_read_timeouts_total{{phase="body"}} {self.body_timeouts}']
        if guard:
            for name, key, kind, text in (
                    ("connections_open", "open", "gauge", "Open client connections."),
                    ("connections_max", "max", "gauge", "--max-connections."),
                    ("connections_evicted_total", "evicted", "counter",
                     "Idle or stalled connections closed to make room at --max-connections."),
                    ("connections_refused_total", "refused", "counter",
                     "Connections refused with 503: --max-connections reached and every connection busy.")):
                lines += [f"# HELP {p}_{name} {text}", f"# TYPE {p}_{name} {kind}", f"{p}_{name} {guard[key]}"]
        lines += [f"# HELP {p}_queue_depth Texts waiting for a batch.", f"# TYPE {p}_queue_depth gauge",
                  f"{p}_queue_depth {self.queue_depth()}",
                  f"# HELP {p}_ready 1 when the model is loaded and the batch worker runs.",
                  f"# TYPE {p}_ready gauge", f"{p}_ready {int(self.ready())}"]
        return "\n".join(lines) + "\n"
