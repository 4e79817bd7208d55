"""Starts the exporter as a server and finds the port it bound."""

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

        threading.Thread(target=read_stderr, daemon=True).start()
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
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.stop in _cleanups:
            _cleanups.remove(self.stop)
