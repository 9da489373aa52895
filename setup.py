"""The one compiled part: the state map's descent and a record list's append
(ledgernode/_mapcore.c, _maplists.c; docs/performance.md).

Everything else is in setup.cfg. The extension is optional: where it cannot be built (no
C compiler, no OpenSSL headers), the install goes on and maptree.py's Python descent,
which computes the same, is used; `python -m ledgernode bench` says which one ran."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ledgernode._mapcore", ["ledgernode/_mapcore.c", "ledgernode/_maplists.c"],
                             depends=["ledgernode/_mapcore.h"], libraries=["crypto"],
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
                             optional=True)])
