"""End-to-end check of `sempart export-triton` with a real Triton server (the one bundled in
nvidia-pytriton), on 127.0.0.1 only. Run by scripts/test-scale-out.sh inside its venv.

    python check_triton.py --repo REPO --expected DIR IMAGE...

Starts `tritonserver` on the repository (free ports), sends 64 requests over HTTP and 64 over
gRPC from 8 client threads (the images in turn) with bad requests among them, and checks: every
mask equals the one `sempart segment` wrote into DIR (`<stem>.mask.png`); the server batched
(a batch size above 1 in its statistics); every bad request (wrong type, empty, corrupt, a header
declaring 100,000 x 100,000 pixels) got an error response and every good one, including those
sent after the bad ones, a mask. The server is stopped at the end, also when a check fails, and
its process group is killed if it does not exit.
"""
import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp

import sempart

MODEL = "sempart"
THREADS = 8
PER_THREAD = 8  # requests per protocol per thread: 8 x 8 = 64 over HTTP, 64 over gRPC


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def png_header(w, h):
    """A PNG whose header declares w x h RGB pixels (and whose data is far too short)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def server_binary():
    import pytriton
    root = Path(pytriton.__file__).resolve().parent / "tritonserver"
    stub = root / "backends" / "python" / "triton_python_backend_stub"
    if not stub.exists():
        # The backend needs the stub built for this Python (it links its libpython).
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        source = root / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not source.exists():
            sys.exit(f"check_triton: nvidia-pytriton has no backend stub for Python {version}")
        stub.write_bytes(source.read_bytes())
        stub.chmod(0o755)
    return root / "bin" / "tritonserver", root / "backends"


class Server:
    def __init__(self, repo, log):
        binary, backends = server_binary()
        self.http, self.grpc, self.metrics = free_ports(3)
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        self.proc = subprocess.Popen(
            [str(binary), "--model-repository", str(repo), "--backend-directory", str(backends),
             "--http-address", "127.0.0.1", "--http-port", str(self.http),
             "--grpc-address", "127.0.0.1", "--grpc-port", str(self.grpc),
             "--metrics-port", str(self.metrics), "--allow-metrics", "false", "--exit-timeout-secs", "10"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, seconds=180):
        client = thttp.InferenceServerClient(f"127.0.0.1:{self.http}")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with status {self.proc.returncode} (see its log)")
            try:
                if client.is_server_ready() and client.is_model_ready(MODEL):
                    return
            except Exception:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"tritonserver was not ready after {seconds} s")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the backend stubs, if any remain
        except ProcessLookupError:
            pass
        self.proc.wait()


def infer(protocol, port, data, dtype="BYTES"):
    """One request; returns (mask, boxes, object_index). Raises on an error response."""
    lib = thttp if protocol == "http" else tgrpc
    client = lib.InferenceServerClient(f"127.0.0.1:{port}")
    if dtype == "BYTES":
        value = np.array([[data]], dtype=object)
    else:  # a tensor of the wrong type for IMAGE
        value = np.frombuffer(data, dtype=np.uint8).astype(np.int32).reshape(1, -1)
    inp = lib.InferInput("IMAGE", list(value.shape), dtype)
    inp.set_data_from_numpy(value)
    outputs = [lib.InferRequestedOutput(n) for n in ("MASK", "BOXES", "OBJECT_INDEX")]
    kw = {"client_timeout": 120} if protocol == "grpc" else {}
    result = client.infer(MODEL, [inp], outputs=outputs, **kw)
    return result.as_numpy("MASK")[0], result.as_numpy("BOXES")[0], int(result.as_numpy("OBJECT_INDEX").reshape(-1)[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--expected", type=Path, required=True)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("images", type=Path, nargs="+")
    args = ap.parse_args()
    images = [(p.stem, p.read_bytes()) for p in args.images]
    expected = {stem: sempart.decode((args.expected / f"{stem}.mask.png").read_bytes())[:, :, 0] for stem, _ in images}
    bad = {
        "wrong type": (b"\x01\x02\x03\x04", "INT32"),
        "empty": (b"", "BYTES"),
        "corrupt": (images[0][1][: len(images[0][1]) // 3], "BYTES"),
        "100000 x 100000 header": (png_header(100_000, 100_000), "BYTES"),
    }
    failures, lock = [], threading.Lock()
    counts = {"good": 0, "bad": 0}

    def fail(message):
        with lock:
            failures.append(message)

    with open(args.log, "w") as log:
        server = Server(args.repo, log)
        try:
            server.wait_ready()
            print(f"check_triton: tritonserver ready (HTTP {server.http}, gRPC {server.grpc})")

            def client_thread(k):
                for i in range(PER_THREAD):
                    for protocol, port in (("http", server.http), ("grpc", server.grpc)):
                        stem, data = images[(k * PER_THREAD + i) % len(images)]
                        try:
                            mask, boxes, obj = infer(protocol, port, data)
                            if not np.array_equal(mask, expected[stem]):
                                fail(f"{protocol} {stem}: the mask differs from sempart segment's")
                            with lock:
                                counts["good"] += 1
                        except Exception as e:
                            fail(f"{protocol} {stem}: a good request failed: {e}")
                        if i == PER_THREAD // 2 and k < len(bad):
                            # A bad request in the middle of this thread's good ones.
                            what, (payload, dtype) = list(bad.items())[k]
                            try:
                                infer(protocol, port, payload, dtype)
                                fail(f"{protocol}: the {what} request got no error")
                            except Exception as e:
                                with lock:
                                    counts["bad"] += 1
                                print(f"check_triton: {protocol} {what}: error response: {str(e).splitlines()[0][:120]}")

            started = time.perf_counter()
            threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=600)
            seconds = time.perf_counter() - started
            if any(t.is_alive() for t in threads):
                fail("client threads did not finish within 600 s")
            # Good requests after the bad ones, over both protocols.
            for protocol, port in (("http", server.http), ("grpc", server.grpc)):
                stem, data = images[-1]
                mask, _, _ = infer(protocol, port, data)
                if not np.array_equal(mask, expected[stem]):
                    fail(f"{protocol} {stem} after the bad requests: the mask differs")
            stats = thttp.InferenceServerClient(f"127.0.0.1:{server.http}").get_inference_statistics(MODEL)
            sizes = {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats["model_stats"][0]["batch_stats"]}
            print(f"check_triton: {counts['good']} good requests (64 HTTP + 64 gRPC) in {seconds:.1f} s, "
                  f"{counts['bad']} bad ones answered with errors; executions by batch size: {dict(sorted(sizes.items()))}")
            if counts["good"] != 2 * THREADS * PER_THREAD:
                fail(f"{counts['good']} good requests succeeded, expected {2 * THREADS * PER_THREAD}")
            if counts["bad"] != 2 * len(bad):
                fail(f"{counts['bad']} bad requests got errors, expected {2 * len(bad)} (each kind over HTTP and gRPC)")
            if not any(size > 1 for size in sizes):
                fail(f"the server never batched requests (batch sizes {sorted(sizes)})")
        except Exception as e:
            fail(f"{type(e).__name__}: {e}")
        finally:
            server.stop()
    for f in failures:
        print(f"check_triton: FAILED: {f}", file=sys.stderr)
    if failures:
        print(f"check_triton: the server's log is {args.log}", file=sys.stderr)
        return 1
    print("check_triton: passed (every mask equals sempart segment's; server stopped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
