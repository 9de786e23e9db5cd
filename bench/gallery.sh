#!/usr/bin/env bash
# The attack gallery (one row per attack: clean, poisoned, |difference| x10, test trigger) on the
# embedded digits set; LC uses the quick clean model (ResNet-18 w16, 2 epochs), cached in
# runs/.cache after the first call. Same as `ibtui attacks gallery --dataset digits --out FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/gallery-digits.png}"
time .venv/bin/python -c "
import sys
from ibtui.data.gallery import make_gallery
print(make_gallery('digits', out=sys.argv[1]))
" "$out"
