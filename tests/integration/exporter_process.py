"""Starts the exporter as a server and finds the port it bound."""

import os
import re
import subprocess
import threading
import time
import urllib.request

from harness import _cleanups


class ExporterProcess:
    def __init__(self, exporter, *args, ns=None, listen="127.0.0.1:0"):
        argv = [exporter, f"--web.listen-address={listen}", *args]
        if ns is not None:
            argv = ns.cmd(argv)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        _cleanups.append(self.stop)
        self.log = []
        self.port = None
        ready = threading.Event()

        def read_stderr():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"\(port (\d+)\)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self._stderr_reader = threading.Thread(target=read_stderr, daemon=True)
        self._stderr_reader.start()
        if not ready.wait(15) or self.port is None:
            self.stop()
            raise RuntimeError("exporter did not start:\n" + "".join(self.log))

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, method="GET", headers=None, timeout=10):
        req = urllib.request.Request(self.url(path), method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def stop(self):
        """Stops the exporter. Under the sanitizers (SOCKET_EXPORTER_SANITIZED=1,
        scripts/test.sh stage asan) it is stopped with SIGTERM, which runs
        LeakSanitizer's check before exiting, and a sanitizer report or a
        non-zero exit raises: a leak or UB in the server fails the test."""
        if self.stop in _cleanups:
            _cleanups.remove(self.stop)
        sanitized = os.environ.get("SOCKET_EXPORTER_SANITIZED") == "1"
        if self.proc.poll() is None:
            if sanitized:
                self.proc.terminate()
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            else:
                self.proc.kill()
                self.proc.wait(5)
        if sanitized:
            self._stderr_reader.join(10)
            report = [l for l in self.log if "Sanitizer" in l or "runtime error:" in l]
            if report or self.proc.returncode not in (0, -9, -15):
                raise RuntimeError(f"exporter exited {self.proc.returncode} under the sanitizers:\n"
                                   + "".join(self.log[-60:]))
