"""deploy.serve under a flood of stalled connections: does /health still answer within 1 s?

    python benchmarks/serve_stalled_connections.py [--connections 20000 --duration 30] [--model-dir EXPORT]

Starts the real server (``python -m deploy.serve``, its stderr to a file) on 127.0.0.1, then client processes
open ``--connections`` sockets that stall — a third silent, a third stopping in the middle of the request
headers, a third sending the headers and part of the body — and keep that many open: a socket the server closes
(evicted at --max-connections, or timed out) is opened again at once. Meanwhile /health is asked every
``--probe-interval`` s on a fresh connection (5 s timeout), and the server's open descriptors (``/proc``) and
log size are sampled every second. Prints the /health latency (p50/p99/max, failures), the server's descriptors
and log growth, and the clients' counts. Each client process raises its RLIMIT_NOFILE to the hard limit and takes
at most (hard limit - 100) sockets, so 20,000 sockets may need two processes; each has at most
``--connects-in-flight`` handshakes under way (default 256): more fill the server's accept queue, in front of the
/health probe's connection.

Without ``--model-dir`` the tiny test tagger of ``tests/deploy`` is built in a temporary directory (the model
does not matter for /health). ``--server-repo`` runs ``deploy.serve`` from another checkout (e.g. the code before
the connection guard; the guard's flags are passed only when given).
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STALLS = {
    "silent": b"",
    "headers": b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Ty",
    "body": b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b"{\"texts\": [",
}


def raise_nofile() -> tuple[int, int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return soft, new, hard


def tiny_export(root: Path) -> Path:
    """The multi-class test tagger of tests/deploy (real ONNX graph, real BERT vocab)."""
    sys.path[:0] = [str(REPO / "tests" / "deploy")]
    from conftest import _vocab_bytes  # noqa: PLC0415 - test helpers, only when no export is given
    from onnx_taggers import ExportKit  # noqa: PLC0415
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors  # noqa: PLC0415

    vocab = _vocab_bytes().decode("utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    ids = {tok: i for i, tok in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", ids["[CLS]"]),
                                                                       ("[SEP]", ids["[SEP]"])])
    tok.save(str(root / "tokenizer.json"))
    return ExportKit(vocab, root / "tokenizer.json", root / "exports").make("multi_class", precisions=("fp32",))


# ---- the flood (client processes) ----

async def _flood(port: int, n: int, first: int, stop_at: float, reopen: bool, in_flight: int,
                 kinds: list[str]) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    stats = {"opened": 0, "closed_by_server": 0, "answered_408": 0, "answered_503": 0, "connect_errors": 0,
             "open_now": 0, "max_open": 0, "all_open_after_s": -1.0}
    start = time.time()
    gate = asyncio.Semaphore(in_flight)  # connects in flight

    async def keep_one(i: int) -> None:
        payload = STALLS[kinds[(first + i) % len(kinds)]]
        while time.time() < stop_at:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                async with gate:
                    await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 10)
                if payload:
                    sock.send(payload)
            except (OSError, TimeoutError):
                stats["connect_errors"] += 1
                sock.close()
                await asyncio.sleep(0.5)
                continue
            stats["opened"] += 1
            stats["open_now"] += 1
            if stats["open_now"] > stats["max_open"]:
                stats["max_open"] = stats["open_now"]
                if stats["max_open"] == n and stats["all_open_after_s"] < 0:
                    stats["all_open_after_s"] = time.time() - start
            closed = loop.create_future()

            def readable(sock: socket.socket = sock, closed: asyncio.Future = closed) -> None:
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    return
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 408"):
                    stats["answered_408"] += 1
                elif data.startswith(b"HTTP/1.1 503"):
                    stats["answered_503"] += 1
                if not data and not closed.done():
                    closed.set_result(None)

            loop.add_reader(sock.fileno(), readable)
            try:
                await asyncio.wait_for(asyncio.shield(closed), max(0.0, stop_at - time.time()))
                stats["closed_by_server"] += 1
            except TimeoutError:
                pass
            loop.remove_reader(sock.fileno())
            sock.close()
            stats["open_now"] -= 1
            if not reopen:
                return

    await asyncio.gather(*(keep_one(i) for i in range(n)))
    return stats


def flood_worker(port: int, n: int, first: int, stop_at: float, reopen: bool, in_flight: int, kinds: list[str],
                 out: mp.Queue) -> None:
    raise_nofile()
    out.put(asyncio.run(_flood(port, n, first, stop_at, reopen, in_flight, kinds)))


# ---- the server and the probes ----

def start_server(args: argparse.Namespace, model_dir: str, log_path: Path) -> tuple[subprocess.Popen, int]:
    flags = []
    for name in ("read_timeout", "keep_alive_timeout", "max_connections"):
        if getattr(args, name) is not None:
            flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    cmd = [sys.executable, "-m", "deploy.serve", "--model-dir", model_dir, "--port", "0", "--threads", "1", *flags]
    env = dict(os.environ, PYTHONPATH=str(args.server_repo), PYTHONUNBUFFERED="1")
    log = open(log_path, "w")  # noqa: SIM115 - the server writes it until it ends
    proc = subprocess.Popen(cmd, cwd=args.server_repo, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 120
    while time.time() < deadline:
        match = re.search(r"listening on http://[\d.]+:(\d+)", log_path.read_text())
        if match:
            port = int(match.group(1))
            while time.time() < deadline and health(port)[0] != 200:
                time.sleep(0.1)
            return proc, port
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start in 120 s")


def health(port: int, timeout: float = 5.0) -> tuple[int, float]:
    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", "/health")
        status = conn.getresponse().status
        conn.close()
    except OSError:
        status = 0
    return status, time.perf_counter() - t0


def server_metrics(port: int) -> dict[str, float]:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=20_000, help="stalled sockets kept open")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of flood after the first socket")
    parser.add_argument("--probe-interval", type=float, default=0.1, help="seconds between /health probes")
    parser.add_argument("--no-reopen", action="store_true", help="open each socket once; do not replace closed ones")
    parser.add_argument("--kinds", default="silent,headers,body",
                        help="stalls, in turn: silent, headers (stops inside the headers), body (inside the body)")
    parser.add_argument("--connects-in-flight", type=int, default=256,
                        help="connects (handshakes) under way at once per client process")
    parser.add_argument("--model-dir", default=None, help="export to serve (default: the tiny test tagger)")
    parser.add_argument("--server-repo", type=Path, default=REPO, help="checkout whose deploy/ serves")
    parser.add_argument("--read-timeout", type=float, default=None)
    parser.add_argument("--keep-alive-timeout", type=float, default=None)
    parser.add_argument("--max-connections", type=int, default=None)
    args = parser.parse_args()

    soft_before, soft, hard = raise_nofile()
    per_process = max(1, hard - 100)
    workers = -(-args.connections // per_process)
    with tempfile.TemporaryDirectory(prefix="stalled_") as tmp:
        model_dir = args.model_dir or str(tiny_export(Path(tmp)))
        log_path = Path(tmp) / "server.log"
        proc, port = start_server(args, model_dir, log_path)
        try:
            base_fds, base_log = fds(proc.pid), log_path.stat().st_size
            cpu0 = _cpu_seconds(proc.pid)
            stop_at = time.time() + args.duration
            out: mp.Queue = mp.get_context("fork").Queue()
            shares = [args.connections // workers + (i < args.connections % workers) for i in range(workers)]
            procs = [mp.get_context("fork").Process(target=flood_worker, daemon=True,
                                                    args=(port, share, sum(shares[:i]), stop_at, not args.no_reopen,
                                                          args.connects_in_flight, args.kinds.split(","), out))
                     for i, share in enumerate(shares)]
            for p in procs:
                p.start()
            probes: list[tuple[float, int, float]] = []
            samples: list[tuple[float, int, int]] = []
            t0 = time.time()

            def sample() -> None:
                while time.time() < stop_at:
                    samples.append((time.time() - t0, fds(proc.pid), log_path.stat().st_size - base_log))
                    time.sleep(1.0)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            while time.time() < stop_at:
                status, seconds = health(port)
                probes.append((time.time() - t0, status, seconds))
                time.sleep(max(0.0, args.probe_interval - seconds))
            stats = [out.get(timeout=60) for _ in procs]
            for p in procs:
                p.join(10)
            sampler.join(5)
            after_status, after_s = health(port)
            metrics = server_metrics(port)
            cpu = _cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log = log_path.read_text(errors="replace")
    report(args, soft_before, soft, hard, workers, probes, samples, stats, metrics, base_fds, log, cpu,
           (after_status, after_s))
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def report(args, soft_before, soft, hard, workers, probes, samples, stats, metrics, base_fds, log, cpu, after):
    ok = np.array([s for _, status, s in probes if status == 200])
    failed = sum(1 for _, status, _ in probes if status != 200)
    total = {k: sum(s[k] for s in stats) for k in stats[0] if k not in ("max_open", "all_open_after_s", "open_now")}
    max_open = sum(s["max_open"] for s in stats)
    ramp = max(s["all_open_after_s"] for s in stats)
    pct = (lambda q: f"{np.percentile(ok, q) * 1000:.1f} ms") if len(ok) else (lambda q: "-")
    rows = [
        ("client RLIMIT_NOFILE (soft before → used, hard)", f"{soft_before} → {soft}, hard {hard}"),
        ("client processes × sockets", f"{workers} × ≤{max(1, hard - 100)}"),
        ("stalled sockets held at once (max)", f"{max_open:,} of {args.connections:,}"
                                                f"{f' (all open after {ramp:.1f} s)' if ramp >= 0 else ''}"),
        ("sockets opened / closed by the server", f"{total['opened']:,} / {total['closed_by_server']:,}"),
        ("answered 408 / 503 while stalled", f"{total['answered_408']:,} / {total['answered_503']:,}"),
        ("client connect errors (incl. 10 s connect timeouts)", f"{total['connect_errors']:,}"),
        ("/health probes (answered 200 / failed)", f"{len(ok)} / {failed}"),
        ("/health latency p50 / p99 / max", f"{pct(50)} / {pct(99)} / {pct(100)}"),
        ("/health over 1 s", f"{int((ok > 1.0).sum()) + failed}"),
        ("/health after the flood", f"{after[0]} in {after[1] * 1000:.1f} ms"),
        ("server open fds: before / max during", f"{base_fds} / {max((f for _, f, _ in samples), default=-1):,}"),
        ("server log growth during the flood", f"{max((g for _, _, g in samples), default=0):,} bytes"),
        ("'Too many open files' in the log", f"{log.count('Too many open files')}"),
        ("server CPU time during the run", f"{cpu:.1f} s"),
    ]
    for key, label in (("paddle_tag_connections_max", "server --max-connections"),
                       ("paddle_tag_connections_evicted_total", "server: connections evicted"),
                       ('paddle_tag_read_timeouts_total{phase="request"}', "server: request read timeouts"),
                       ('paddle_tag_read_timeouts_total{phase="body"}', "server: streamed-body read timeouts"),
                       ("paddle_tag_connections_refused_total", "server: connections refused (503)"),
                       ("paddle_tag_client_disconnects_total", "server: client disconnects")):
        if key in metrics:
            rows.append((label, f"{int(metrics[key]):,}"))
    width = max(len(k) for k, _ in rows)
    print(f"\nstalled-connection flood: {args.connections:,} sockets for {args.duration:g} s, "
          f"{'each opened once' if args.no_reopen else 'closed ones reopened at once'}, stalls {args.kinds}, "
          f"{args.connects_in_flight} connects in flight per client process "
          f"(server {args.server_repo}, read timeout {args.read_timeout or 'default'})")
    print(f"| {'measure':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")
    slow = [(round(t, 1), status, round(s, 3)) for t, status, s in probes if status != 200 or s > 1.0]
    if slow:
        print(f"slow or failed /health probes (t s, status, latency s): {slow[:20]}")
    print(json.dumps({"health_ok": len(ok), "health_failed": failed,
                      "p50_ms": float(np.percentile(ok, 50) * 1000) if len(ok) else None,
                      "p99_ms": float(np.percentile(ok, 99) * 1000) if len(ok) else None,
                      "max_ms": float(ok.max() * 1000) if len(ok) else None}))


if __name__ == "__main__":
    sys.exit(main())
