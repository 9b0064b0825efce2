"""The one exception type that means "the user's input is wrong" (not a bug).

The CLI turns it into a one-line ``error: ...`` on stderr and exit status 2; any other
exception is a bug and keeps its traceback.

>>> from celebseg_utils.errors import CelebsegError
>>> str(CelebsegError("missing folder /x: run `celebseg synth --out /x` first"))
'missing folder /x: run `celebseg synth --out /x` first'
"""


class CelebsegError(Exception):
    """Bad user input: the message names the file or option and says how to fix it."""

    exit_code = 2
