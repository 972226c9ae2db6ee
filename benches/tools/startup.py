#!/usr/bin/env python3
"""Start-up of one or more carebridge binaries, measured the way `spine`
measures it (exec -> the local broker accepts connections and /healthz
answers 200), with the binaries' runs interleaved so a busy machine slows
them alike. Also prints each binary's size.

    python3 benches/tools/startup.py [--runs N] BINARY [BINARY ...]
"""
import argparse, os, socket, statistics, subprocess, tempfile, time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def healthy(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return s.recv(32).startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))
    except OSError:
        return False


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def one_start(exe, data):
    broker, web = free_port(), free_port()
    conf = os.path.join(data, "s.toml")
    with open(conf, "w") as f:
        f.write(f'[gateway]\nid = "su"\ndata_dir = "{data}/d"\n'
                f'[local_broker]\nlisten = "127.0.0.1:{broker}"\n'
                f'[web]\nlisten = "127.0.0.1:{web}"\ntls = false\n')
    t0 = time.perf_counter()
    p = subprocess.Popen([exe, "run", "--config", conf], env={**os.environ, "RUST_LOG": "error"},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not accepts(broker):
            assert time.perf_counter() - t0 < 10, "broker never accepted"
            time.sleep(0.002)
        while not healthy(web):
            assert time.perf_counter() - t0 < 10, "never healthy"
            time.sleep(0.002)
        return (time.perf_counter() - t0) * 1000
    finally:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    dirs = {b: tempfile.mkdtemp(prefix="cb-startup-") for b in a.binaries}
    for b in a.binaries:  # first boot creates the database: not counted
        one_start(b, dirs[b])
    times = {b: [] for b in a.binaries}
    for _ in range(a.runs):
        for b in a.binaries:
            times[b].append(one_start(b, dirs[b]))
    for b in a.binaries:
        t = sorted(times[b])
        print(f"{b}: {os.path.getsize(b):,} B; start-up median {statistics.median(t):.0f} ms, "
              f"min {t[0]:.0f}, max {t[-1]:.0f} over {a.runs} runs")


if __name__ == "__main__":
    main()
