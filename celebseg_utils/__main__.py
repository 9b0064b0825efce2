import sys

from celebseg_utils.cli import main

sys.exit(main())
