"""Imported by the fork server that starts the decoding processes (the preload of
:func:`pipeline.extract.worker_start`), and by nothing else: the server ignores a scheduler's
stop signals (:data:`pipeline.stop_signals.STOP_SIGNALS`), as Python's resource tracker ignores
SIGTERM, and so does each process it forks until its set-up. The signals reach every process
of a job, and they are the command's to act on: a fork server they ended left the command's
next loader unable to start its processes (``EOFError``), which ended the command where it
was to save its place and stop."""

from pipeline.stop_signals import leave_to_the_command

leave_to_the_command()
