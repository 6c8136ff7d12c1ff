"""Several server processes, each accepting on a listening socket of its own (`koa serve --workers`).

uvicorn's supervisor binds one socket and hands it to every worker: the worker that wakes first
accepts everything pending, and keep-alive clients stay where they landed. 50 clients connecting
together were split 39/12, 32/19 and once 49/2 between two workers, and the busier one answered
slower (POST p99 62-78 ms against 60-64 ms when the split was even; README, Performance). Here each
worker gets its own socket, all bound to the same address with SO_REUSEPORT, so the kernel spreads
new connections over them by their addresses. The parent keeps every socket open: connections that
arrive while a worker is being replaced wait in its socket's queue for the replacement.

Everything else (health checks, restarts, signals) is uvicorn's supervisor; only the choice of
sockets for a new worker differs, which is why the three methods that create workers are restated
here with `_new_worker(slot)` in place of `Process(self.config, self.sockets)` (uvicorn 0.54).
"""

from __future__ import annotations

import socket

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process, logger


def listening_sockets(host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    """`count` sockets listening on (host, port) with SO_REUSEPORT; closes them all if one fails."""
    assert 1 <= count <= 32, count
    assert backlog >= 1, backlog
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # SO_REUSEPORT would also let these join sockets that another server of this user (a second
    # `koa serve --workers`) left listening on the port, and the two would share its clients
    # unnoticed: a socket without it binds only where nothing listens, so try that first.
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past connections in TIME_WAIT
        probe.bind((host, port))
    made: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            made.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError:
        for sock in made:
            sock.close()
        raise
    # With port 0 every socket would get a port of its own: the caller names one.
    assert len({s.getsockname()[1] for s in made}) == 1, "sockets on different ports"
    return made


class SocketPerWorker(Multiprocess):
    """uvicorn's supervisor, with worker `slot` always serving `sockets[slot]`."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        assert len(sockets) == config.workers, (len(sockets), config.workers)
        super().__init__(config, sockets=sockets)

    def _new_worker(self, slot: int) -> Process:
        return Process(self.config, [self.sockets[slot]])

    def init_processes(self) -> None:
        for slot in range(self.processes_num):
            process = self._new_worker(slot)
            process.start()
            self.processes.append(process)

    def restart_all(self) -> None:
        """As uvicorn's: each replacement serves before the worker it replaces is retired."""
        for slot, old_process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new_process = self._new_worker(slot)
            new_process.start()
            if not new_process.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new_process.kill()
                new_process.join()
                if not self.should_exit.is_set():
                    logger.error(
                        f"New child process [{new_process.pid}] was not ready in time; "
                        f"keeping worker [{old_process.pid}] and aborting the restart."
                    )
                return
            old_process.terminate()
            old_process.join()
            self.processes[slot] = new_process

    def keep_subprocess_alive(self) -> None:
        """As uvicorn's: a hung or dead worker is replaced, one that failed to start stops the parent."""
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error(f"Child process [{process.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info(f"Child process [{process.pid}] died")
            process = self._new_worker(slot)
            process.start()
            self.processes[slot] = process
