#!/usr/bin/env python3
"""Entry point: ``python run.py <command>`` (see ``python run.py --help``)."""

import os
import signal
import sys

from engine.cli import main


def _run() -> int:
    """Run the CLI; a reader that went away (``run.py status | head -1``) ends it quietly, as it does ``cat``.

    Without this, the rows that no longer had a reader ended in a BrokenPipeError traceback (or Python's "Exception
    ignored … BrokenPipeError" when its exit flushed stdout). SIGPIPE is not reset to its default: the daemon's
    sockets rely on EPIPE being an error, not a signal that kills the process.
    """
    try:
        code = main()
        sys.stdout.flush()  # here, where a broken pipe is caught, rather than at exit
    except BrokenPipeError:
        if "daemon" in sys.argv[1:2]:
            raise  # a socket's EPIPE that reached the top of the daemon is an error to see, not a closed reader
        # Python flushes stdout once more at exit: point it at /dev/null so that flush has nowhere to fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE  # what the shell reports for a program the closed pipe ended
    return code


if __name__ == "__main__":
    sys.exit(_run())
