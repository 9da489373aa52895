/* What the compiled state map's two files share (ledgernode/_mapcore.c: the map's
   descent, the module; ledgernode/_maplists.c: a record list's append). */

#ifndef LEDGERNODE_MAPCORE_H
#define LEDGERNODE_MAPCORE_H

#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED /* the one-shot SHA256_* calls: the fastest path */
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#define HASH_BYTES 32

/* SHA-256 of prefix || a || b into out (every hash both files make: a tagged hash's
   prefix, or RFC 6962's one-byte tag). out may be a or b: they are read before it is written. */
static inline void sha256_of(const void *prefix, size_t prefix_len, const void *a, size_t a_len, const void *b,
                             size_t b_len, unsigned char *out) {
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, prefix, prefix_len);
    SHA256_Update(&c, a, a_len);
    SHA256_Update(&c, b, b_len);
    SHA256_Final(out, &c);
}

/* An invariant of ours broken by a caller (maptree.py): AssertionError, as Python's assert. */
static inline int broken(const char *what) {
    PyErr_Format(PyExc_AssertionError, "state map descent: %s", what);
    return -1;
}

/* _maplists.c: statemap.list_append's common case, and its Python for everything else. */
PyObject *maplists_append(PyObject *self, PyObject *args);
extern PyObject *maplists_python;
extern const char maplists_append_doc[];

#endif
