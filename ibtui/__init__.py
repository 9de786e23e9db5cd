"""ibtui: backdoor training dynamics through the information bottleneck."""

import os

# MKL's CPU results otherwise depend on memory alignment; must be set before torch loads MKL,
# or a resumed run could differ from the uninterrupted one in the last bits.
os.environ.setdefault("MKL_CBWR", "AUTO")
