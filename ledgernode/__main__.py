import signal
import sys

# SIGHUP reloads a running node's peers (ledgernode/peers.py). Its default action ends
# the process, so it is ignored from here until the node's loop takes it over.
signal.signal(signal.SIGHUP, signal.SIG_IGN)

from .cli import main  # noqa: E402  (after the signal: importing takes a while)

sys.exit(main())
