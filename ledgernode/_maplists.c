/* A record list's append, compiled: statemap.list_append of a list whose map leaf was
   checked (edge_checked), for a list exactly as statemap._list_bytes writes one
   (docs/protocol.md section 11: an RFC 6962 tree of u64be leaf indexes, its value
   {"n", "root"} in canonical msgpack, its right edge kept on the leaf). Anything else,
   errors included, goes to statemap's Python (maplists_python, set by configure), so the
   words of every refusal are statemap's. tests/unit/test_mapcore.py checks both agree. */

#include "_mapcore.h"

PyObject *maplists_python; /* maptree._checked_list_append */

#define LIST_EDGE_MAX 64 /* one hash per set bit of a u64 size */
static const unsigned char list_head[3] = {0x82, 0xa1, 'n'}; /* fixmap 2, "n" */
static const unsigned char list_root_head[7] = {0xa4, 'r', 'o', 'o', 't', 0xc4, 0x20}; /* "root", bin8 32 */

static const unsigned char leaf_tag = 0, node_tag = 1; /* RFC 6962's leaf and node prefixes */

/* n of a list value exactly as statemap._list_bytes writes it (canonical, n >= 1), or 0. */
static uint64_t list_size(const unsigned char *v, Py_ssize_t len) {
    if (len < 3 + 1 + 7 + HASH_BYTES || memcmp(v, list_head, 3) != 0)
        return 0;
    Py_ssize_t width = len - 3 - 7 - HASH_BYTES; /* the uint's bytes */
    const unsigned char *u = v + 3;
    uint64_t n = 0;
    if (width == 1 && u[0] < 0x80)
        n = u[0];
    else if ((width == 2 && u[0] == 0xcc) || (width == 3 && u[0] == 0xcd) || (width == 5 && u[0] == 0xce) ||
             (width == 9 && u[0] == 0xcf)) {
        for (Py_ssize_t i = 1; i < width; i++)
            n = n << 8 | u[i];
        uint64_t least = width == 2 ? 0x80 : width == 3 ? 1u << 8 : width == 5 ? 1u << 16 : (uint64_t)1 << 32;
        if (n < least)
            return 0; /* not the smallest encoding */
    }
    if (memcmp(u + width, list_root_head, 7) != 0)
        return 0;
    return n;
}

static Py_ssize_t uint_bytes(uint64_t n, unsigned char *out) {
    if (n < 0x80) {
        out[0] = (unsigned char)n;
        return 1;
    }
    int width = n < (1u << 8) ? 1 : n < (1u << 16) ? 2 : n < ((uint64_t)1 << 32) ? 4 : 8;
    out[0] = width == 1 ? 0xcc : width == 2 ? 0xcd : width == 4 ? 0xce : 0xcf;
    for (int i = 0; i < width; i++)
        out[1 + i] = (unsigned char)(n >> (8 * (width - 1 - i)));
    return 1 + width;
}

static int append_created(PyObject *created, int level, uint64_t index, const unsigned char *h) {
    PyObject *node = Py_BuildValue("(iKy#)", level, (unsigned long long)index, (const char *)h, (Py_ssize_t)HASH_BYTES);
    if (node == NULL)
        return -1;
    int r = PyList_Append(created, node);
    Py_DECREF(node);
    return r;
}

const char maplists_append_doc[] = "list_append(value_bytes, edge, leaf_indexes) -> (value_bytes, edge, created): "
                                   "statemap.list_append with edge_checked, compiled for lists exactly as it writes "
                                   "them; anything else goes to statemap's Python.";

PyObject *maplists_append(PyObject *self, PyObject *args) {
    PyObject *value, *edge, *leaves;
    if (!PyArg_ParseTuple(args, "OSO!", &value, &edge, &PyList_Type, &leaves))
        return NULL;
    if (maplists_python == NULL)
        return broken("configure() first"), NULL;
    unsigned char frontier[LIST_EDGE_MAX + 1][HASH_BYTES];
    uint64_t n = 0;
    int k = 0; /* hashes on the edge */
    Py_ssize_t edge_len = PyBytes_GET_SIZE(edge), count = PyList_GET_SIZE(leaves);
    int common = count >= 1 && (value == Py_None ? edge_len == 0 : PyBytes_CheckExact(value));
    if (common && value != Py_None) {
        n = list_size((const unsigned char *)PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
        k = __builtin_popcountll(n);
        common = n >= 1 && edge_len == (Py_ssize_t)k * HASH_BYTES && (uint64_t)count <= UINT64_MAX - n;
        if (common)
            memcpy(frontier, PyBytes_AS_STRING(edge), (size_t)edge_len);
    }
    for (Py_ssize_t i = 0; common && i < count; i++) {
        PyObject *leaf = PyList_GET_ITEM(leaves, i);
        common = PyLong_CheckExact(leaf); /* not a bool: statemap.list_leaf_hash refuses one */
        if (common && PyLong_AsUnsignedLongLong(leaf) == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear(); /* negative, or past a u64 */
            common = 0;
        }
    }
    if (!common) /* a new list given an edge, a value not as written here, a leaf index out of range */
        return PyObject_CallFunctionObjArgs(maplists_python, value, edge, leaves, NULL);
    PyObject *created = PyList_New(0);
    if (created == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        unsigned long long leaf = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(leaves, i));
        unsigned char be[8], h[HASH_BYTES];
        for (int b = 0; b < 8; b++)
            be[b] = (unsigned char)(leaf >> (8 * (7 - b)));
        sha256_of(&leaf_tag, 1, be, 8, be, 0, h);
        uint64_t index = n;
        int level = 0;
        if (append_created(created, 0, index, h) < 0)
            goto fail;
        while (index & 1) {
            assert(k > 0);
            sha256_of(&node_tag, 1, frontier[--k], HASH_BYTES, h, HASH_BYTES, h);
            index >>= 1;
            level++;
            if (append_created(created, level, index, h) < 0)
                goto fail;
        }
        memcpy(frontier[k++], h, HASH_BYTES);
        n++;
    }
    unsigned char root[HASH_BYTES];
    memcpy(root, frontier[k - 1], HASH_BYTES);
    for (int i = k - 2; i >= 0; i--)
        sha256_of(&node_tag, 1, frontier[i], HASH_BYTES, root, HASH_BYTES, root);
    unsigned char out[3 + 9 + 7 + HASH_BYTES];
    Py_ssize_t at = 3;
    memcpy(out, list_head, 3);
    at += uint_bytes(n, out + at);
    memcpy(out + at, list_root_head, 7);
    memcpy(out + at + 7, root, HASH_BYTES);
    return Py_BuildValue("(y#y#N)", (const char *)out, at + 7 + HASH_BYTES, (const char *)frontier,
                         (Py_ssize_t)k * HASH_BYTES, created);
fail:
    Py_DECREF(created);
    return NULL;
}
