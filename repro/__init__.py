#
# CPU numerics are pinned here, on import, before any repro module imports torch: the same bits on every x86-64 CPU
# with AVX2 (repro/numerics.py; REPRO_NUMERICS=native turns it off).
from repro.numerics import pin_environment as _pin_environment

_pin_environment()
