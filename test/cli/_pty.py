#!/usr/bin/env python3
"""Runs a command on a fresh pseudo-terminal and types at it, for test/cli/console.test.ts.

Usage: _pty.py DEADLINE_SECONDS COMMAND... ; the steps come as JSON on stdin, a list of
  ["expect", TEXT]   read the terminal until TEXT has arrived; the segment read is recorded
  ["send", TEXT]     type TEXT (control characters included)
  ["snapshot"]       record the terminal's local modes now (echo, canonical, signals)
  ["signal", NAME]   send the signal NAME ("SIGTERM") to the command
  ["hangup"]         close the terminal (its master side), as closing a terminal window does
  ["exit"]           wait for the command to end
The command's stderr is this script's stderr. On stdout: one JSON object with the segments, what was
read after the last one ("rest"), the snapshots, the exit status, whether the terminal's attributes after the run equal those before it, and
"error" when a step ran past the deadline (the command is then killed).
"""
import fcntl
import json
import os
import select
import signal
import sys
import termios
import time

LFLAG = 3  # index of c_lflag in tcgetattr's list


def modes(fd):
    lflag = termios.tcgetattr(fd)[LFLAG]
    return {
        "echo": bool(lflag & termios.ECHO),
        "icanon": bool(lflag & termios.ICANON),
        "isig": bool(lflag & termios.ISIG),
    }


def main():
    deadline = time.monotonic() + float(sys.argv[1])
    command = sys.argv[2:]
    steps = json.load(sys.stdin)
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        os.dup2(slave, 0)
        os.dup2(slave, 1)
        os.close(master)
        os.execvp(command[0], command)
    result = {"segments": [], "snapshots": [], "exit": None, "signal": None}
    buffered = b""
    status = None

    def reap(block):
        nonlocal status
        if status is None:
            done, st = os.waitpid(pid, 0 if block else os.WNOHANG)
            if done:
                status = st

    def read_some(timeout):
        nonlocal buffered
        if master is None:  # hung up: nothing to read, only the exit to wait for
            time.sleep(timeout)  # poll interval, bounded by the deadline of the step
            return
        ready, _, _ = select.select([master], [], [], timeout)
        if ready:
            try:
                buffered += os.read(master, 4096)
            except OSError:  # EIO: the command has closed its end
                reap(False)
                if status is None:
                    time.sleep(0.01)  # the slave closed before the exit: poll, bounded by the deadline

    try:
        for step in steps:
            kind = step[0]
            if kind == "expect":
                want = step[1].encode("latin-1")
                while want not in buffered:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"waiting for {step[1]!r}; got {buffered!r}")
                    read_some(0.05)
                end = buffered.index(want) + len(want)
                result["segments"].append(buffered[:end].decode("latin-1"))
                buffered = buffered[end:]
            elif kind == "send":
                os.write(master, step[1].encode("latin-1"))
            elif kind == "snapshot":
                result["snapshots"].append(modes(slave))
            elif kind == "hangup":
                os.close(master)
                master = None
            elif kind == "signal":
                os.kill(pid, getattr(signal, step[1]))
            elif kind == "exit":
                while status is None:
                    if time.monotonic() > deadline:
                        raise TimeoutError("waiting for the command to exit")
                    read_some(0.05)
                    reap(False)
            else:
                raise ValueError(f"unknown step {step!r}")
    except TimeoutError as e:
        result["error"] = str(e)
        os.kill(pid, signal.SIGKILL)
        reap(True)
    if status is not None:
        if os.WIFEXITED(status):
            result["exit"] = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            result["signal"] = signal.Signals(os.WTERMSIG(status)).name
    result["rest"] = buffered.decode("latin-1")
    try:
        result["restored"] = termios.tcgetattr(slave) == before
        result["after"] = modes(slave)
    except termios.error:  # hung up: the terminal is gone, there is nothing to restore
        result["restored"] = None
        result["after"] = None
    print(json.dumps(result))


main()
