/* The state map's descent in C: the same walk as maptree.StateMap._update, compiled.

   maptree.py is the definition (docs/protocol.md section 11, docs/storage.md "The
   state map"); this computes exactly what its Python descent computes (the same root,
   the same new leaves and tiles as bytes and decoded, the same replaced nodes, in the
   same order) and tests/unit/test_mapcore.py checks that they agree on random batches.
   Only the descent is here: tiles, leaves and their hashes. Nodes are read through the
   node store's `node` (NodeStore.node: checked against their hash); one missing, or of
   the wrong kind, raises StoreCorrupt in maptree's words.
   A change's update is the ledger's own Python, called here; the record-list append it
   makes (statemap.list_append, maptree.append_to_list) is also below, for a list exactly
   as statemap writes one, and anything else is handed back to statemap's Python.

   Why: a record's change costs some 40 us in Python, of which the hashing is a tenth;
   the rest is the interpreter walking tiles (docs/performance.md). Nothing here is
   needed to verify anything: the verifier (verify.py) and proofs stay in Python, and a
   build without this module runs maptree's Python descent. */

#include "_mapcore.h"
#define PATH_BITS 256
#define TILE_LEVELS 4
#define SLOTS (1 << TILE_LEVELS)
#define POSITIONS (2 * SLOTS)
#define ATTACHED_HASHES_MAX 64
#define PREFIX_BYTES_MAX 64

enum { K_EMPTY = 0, K_LEAF = 1, K_INNER = 2 };

/* Set once by configure(): what maptree and statemap define. */
static PyObject *empty_root; /* 32 zero bytes, the one object every tile shares */
static PyObject *no_attachment; /* b"" */
static PyObject *store_corrupt; /* errors.StoreCorrupt */
static unsigned char inner_prefix[PREFIX_BYTES_MAX], leaf_prefix[PREFIX_BYTES_MAX], value_prefix[PREFIX_BYTES_MAX];
static Py_ssize_t inner_len, leaf_len, value_len;

/* One descent's callables and outputs (maptree._Writes's three fields). */
typedef struct {
    PyObject *node, *out;
    PyObject *raw, *parsed, *replaced;
} Descent;

static int is_hash(PyObject *h) { return PyBytes_CheckExact(h) && PyBytes_GET_SIZE(h) == HASH_BYTES; }

static int same_hash(PyObject *a, PyObject *b) {
    return a == b || memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), HASH_BYTES) == 0;
}

static PyObject *digest(const unsigned char *prefix, Py_ssize_t prefix_len, const char *a, Py_ssize_t a_len,
                        const char *b, Py_ssize_t b_len) {
    unsigned char md[HASH_BYTES];
    sha256_of(prefix, (size_t)prefix_len, a, (size_t)a_len, b, (size_t)b_len, md);
    return PyBytes_FromStringAndSize((const char *)md, HASH_BYTES);
}

/* A change's outcome (maptree._resolve): *value and *attached new references, or both
   NULL for "no entry". current is NULL for an absent entry. */
static int resolve(PyObject *change, PyObject *current_value, PyObject *current_attached, PyObject **value,
                   PyObject **attached) {
    *value = *attached = NULL;
    if (change == Py_None)
        return 0;
    if (PyBytes_CheckExact(change)) {
        *value = Py_NewRef(change);
        *attached = Py_NewRef(no_attachment);
        return 0;
    }
    if (!PyCallable_Check(change))
        return broken("a change is bytes, None or an update");
    PyObject *outcome = PyObject_CallFunctionObjArgs(change, current_value ? current_value : Py_None,
                                                     current_value ? current_attached : no_attachment, NULL);
    if (outcome == NULL)
        return -1;
    if (outcome == Py_None) {
        Py_DECREF(outcome);
        return 0;
    }
    if (!PyTuple_CheckExact(outcome) || PyTuple_GET_SIZE(outcome) != 2 ||
        !PyBytes_CheckExact(PyTuple_GET_ITEM(outcome, 0)) || !PyBytes_CheckExact(PyTuple_GET_ITEM(outcome, 1))) {
        Py_DECREF(outcome);
        return broken("an update gives (value bytes, attached bytes) or None");
    }
    Py_ssize_t n = PyBytes_GET_SIZE(PyTuple_GET_ITEM(outcome, 1));
    if (n % HASH_BYTES || n > HASH_BYTES * ATTACHED_HASHES_MAX) {
        Py_DECREF(outcome);
        return broken("an update's attachment is whole hashes, at most 64");
    }
    *value = Py_NewRef(PyTuple_GET_ITEM(outcome, 0));
    *attached = Py_NewRef(PyTuple_GET_ITEM(outcome, 1));
    Py_DECREF(outcome);
    return 0;
}

/* A new leaf (maptree._leaf_node): its hash, its bytes into raw, decoded into parsed. */
static PyObject *leaf_node(Descent *d, PyObject *p, PyObject *value, PyObject *attached) {
    Py_ssize_t value_n = PyBytes_GET_SIZE(value), attached_n = PyBytes_GET_SIZE(attached);
    PyObject *vh = digest(value_prefix, value_len, PyBytes_AS_STRING(value), value_n, "", 0);
    if (vh == NULL)
        return NULL;
    PyObject *h = digest(leaf_prefix, leaf_len, PyBytes_AS_STRING(p), HASH_BYTES, PyBytes_AS_STRING(vh), HASH_BYTES);
    Py_DECREF(vh);
    if (h == NULL)
        return NULL;
    Py_ssize_t head = 1 + HASH_BYTES + (attached_n ? 1 : 0);
    PyObject *raw = PyBytes_FromStringAndSize(NULL, head + attached_n + value_n);
    PyObject *parsed = raw ? PyTuple_Pack(4, Py_True, p, value, attached) : NULL;
    if (parsed == NULL) {
        Py_XDECREF(raw);
        Py_DECREF(h);
        return NULL;
    }
    char *at = PyBytes_AS_STRING(raw);
    at[0] = attached_n ? 2 : 0;
    memcpy(at + 1, PyBytes_AS_STRING(p), HASH_BYTES);
    if (attached_n) {
        at[1 + HASH_BYTES] = (char)(attached_n / HASH_BYTES);
        memcpy(at + head, PyBytes_AS_STRING(attached), (size_t)attached_n);
    }
    memcpy(at + head + attached_n, PyBytes_AS_STRING(value), (size_t)value_n);
    int failed = PyDict_SetItem(d->raw, h, raw) < 0 || PyDict_SetItem(d->parsed, h, parsed) < 0;
    Py_DECREF(raw);
    Py_DECREF(parsed);
    if (failed) {
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

/* The stored node h (maptree.StateMap._tile, _leaf): a new reference to a tile (a
   2-tuple) if want_tile, else to a leaf (a 4-tuple); StoreCorrupt as maptree words it. */
static PyObject *load(Descent *d, PyObject *h, int want_tile) {
    PyObject *node = PyObject_CallOneArg(d->node, h);
    if (node == NULL)
        return NULL;
    if (node != Py_None && (!PyTuple_CheckExact(node) || (PyTuple_GET_SIZE(node) != 2 && PyTuple_GET_SIZE(node) != 4))) {
        Py_DECREF(node); /* the store's own bug, not the disk's: a decoded node is a tile or a leaf */
        return broken("a node store gives a tile (2-tuple) or a leaf (4-tuple)"), NULL;
    }
    const char *wrong = NULL;
    if (node == Py_None)
        wrong = "is not stored";
    else if (want_tile && PyTuple_GET_SIZE(node) != 2)
        wrong = "is a leaf where a tile belongs";
    else if (!want_tile && PyTuple_GET_SIZE(node) != 4)
        wrong = "is a tile where a leaf belongs";
    if (wrong == NULL)
        return node;
    Py_DECREF(node);
    PyObject *hex = PyObject_CallMethod(h, "hex", NULL);
    if (hex != NULL) {
        PyErr_Format(store_corrupt, "state map node %U %s", hex, wrong);
        Py_DECREF(hex);
    }
    return NULL;
}

static const unsigned char *path_bytes(PyObject *p) { return (const unsigned char *)PyBytes_AS_STRING(p); }

static int slot_at(PyObject *p, int depth) { return SLOTS + ((path_bytes(p)[depth >> 3] >> ((depth & 4) ? 0 : 4)) & 15); }

static int slot_of(PyObject *changes, Py_ssize_t i, int depth) {
    return slot_at(PyTuple_GET_ITEM(PyTuple_GET_ITEM(changes, i), 0), depth);
}

static int descend(Descent *d, PyObject *h, int kind, int depth, PyObject *changes, Py_ssize_t lo, Py_ssize_t hi,
                   PyObject **rh, int *rk);

/* An entry being built into a new subtree (maptree._Entry): borrowed path, owned value
   and attachment, and its stored leaf's hash if that leaf is unchanged (else NULL). */
typedef struct {
    PyObject *p, *value, *attached, *kept;
} Entry;

static void clear_entries(Entry *es, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(es[i].value);
        Py_XDECREF(es[i].attached);
    }
}

static int new_subtree(Descent *d, Entry *es, Py_ssize_t n, int depth, PyObject **rh, int *rk);
/* Positions above the touched slots, bottom-up, from their halves (maptree._settle). */
static int settle(PyObject **hs, unsigned char *ks, uint32_t dirty) {
    for (int p = SLOTS - 1; p >= 1; p--) {
        if (!(dirty & (3u << (2 * p))))
            continue;
        dirty |= 1u << p;
        int kl = ks[2 * p], kr = ks[2 * p + 1];
        PyObject *now;
        if (kl == K_INNER || kr == K_INNER || (kl == K_LEAF && kr == K_LEAF)) {
            now = digest(inner_prefix, inner_len, PyBytes_AS_STRING(hs[2 * p]), HASH_BYTES,
                         PyBytes_AS_STRING(hs[2 * p + 1]), HASH_BYTES);
            if (now == NULL)
                return -1;
            ks[p] = K_INNER;
        } else if (kl == K_EMPTY) { /* the right half: empty, or one leaf lifted */
            now = Py_NewRef(hs[2 * p + 1]);
            ks[p] = (unsigned char)kr;
        } else { /* one leaf on the left, nothing on the right */
            now = Py_NewRef(hs[2 * p]);
            ks[p] = K_LEAF;
        }
        Py_SETREF(hs[p], now);
    }
    return 0;
}

/* A new tile (maptree._new_tile, _tile_bytes): steals hs; its hash, a new reference. */
static PyObject *new_tile(Descent *d, PyObject **hs, const unsigned char *ks) {
    PyObject *h = Py_NewRef(hs[1]);
    PyObject *hashes = PyTuple_New(POSITIONS);
    if (hashes == NULL) {
        for (int i = 0; i < POSITIONS; i++)
            Py_DECREF(hs[i]);
        Py_DECREF(h);
        return NULL;
    }
    unsigned present = 0, leaves = 0, count = 0;
    for (int s = 0; s < SLOTS; s++) {
        if (ks[SLOTS + s] != K_EMPTY) {
            present |= 1u << s;
            count++;
        }
        if (ks[SLOTS + s] == K_LEAF)
            leaves |= 1u << s;
    }
    PyObject *raw = PyBytes_FromStringAndSize(NULL, 5 + HASH_BYTES * (Py_ssize_t)count);
    if (raw != NULL) {
        unsigned char *at = (unsigned char *)PyBytes_AS_STRING(raw);
        at[0] = 3;
        at[1] = (unsigned char)(present >> 8), at[2] = (unsigned char)present;
        at[3] = (unsigned char)(leaves >> 8), at[4] = (unsigned char)leaves;
        at += 5;
        for (int s = 0; s < SLOTS; s++) {
            if (ks[SLOTS + s] != K_EMPTY) {
                memcpy(at, PyBytes_AS_STRING(hs[SLOTS + s]), HASH_BYTES);
                at += HASH_BYTES;
            }
        }
    }
    for (int i = 0; i < POSITIONS; i++)
        PyTuple_SET_ITEM(hashes, i, hs[i]);
    if (raw == NULL) { /* no call into the API with an error set */
        Py_DECREF(hashes);
        Py_DECREF(h);
        return NULL;
    }
    PyObject *kinds = PyBytes_FromStringAndSize((const char *)ks, POSITIONS);
    PyObject *parsed = kinds ? PyTuple_Pack(2, hashes, kinds) : NULL;
    int failed = parsed == NULL || PyDict_SetItem(d->raw, h, raw) < 0 || PyDict_SetItem(d->parsed, h, parsed) < 0;
    Py_DECREF(raw);
    Py_XDECREF(parsed);
    Py_XDECREF(kinds);
    Py_DECREF(hashes);
    if (failed)
        Py_CLEAR(h);
    return h;
}


/* A new subtree at depth holding es[0:n] (sorted, sharing their first depth bits):
   nothing, one leaf, or a tile over tiles (maptree._subtree). */
static int new_subtree(Descent *d, Entry *es, Py_ssize_t n, int depth, PyObject **rh, int *rk) {
    if (n == 0) {
        *rh = Py_NewRef(empty_root);
        *rk = K_EMPTY;
        return 0;
    }
    if (n == 1) {
        *rk = K_LEAF;
        *rh = es[0].kept ? Py_NewRef(es[0].kept) : leaf_node(d, es[0].p, es[0].value, es[0].attached);
        return *rh ? 0 : -1;
    }
    if (depth >= PATH_BITS)
        return broken("two distinct paths share all 256 bits");
    PyObject *hs[POSITIONS];
    unsigned char ks[POSITIONS];
    memset(ks, K_EMPTY, POSITIONS);
    for (int i = 0; i < POSITIONS; i++)
        hs[i] = Py_NewRef(empty_root);
    uint32_t full = 0;
    for (Py_ssize_t i = 0, j; i < n; i = j) {
        int s = slot_at(es[i].p, depth);
        for (j = i + 1; j < n && slot_at(es[j].p, depth) == s; j++) {
        }
        PyObject *sub;
        int kind;
        if (new_subtree(d, es + i, j - i, depth + TILE_LEVELS, &sub, &kind) < 0) {
            for (int k = 0; k < POSITIONS; k++)
                Py_DECREF(hs[k]);
            return -1;
        }
        Py_SETREF(hs[s], sub);
        ks[s] = (unsigned char)kind;
        full |= 1u << s;
    }
    if (settle(hs, ks, full) < 0) {
        for (int k = 0; k < POSITIONS; k++)
            Py_DECREF(hs[k]);
        return -1;
    }
    *rk = K_INNER;
    *rh = new_tile(d, hs, ks); /* steals hs */
    return *rh ? 0 : -1;
}

static int path_cmp(const void *a, const void *b) {
    return memcmp(path_bytes(((const Entry *)a)->p), path_bytes(((const Entry *)b)->p), HASH_BYTES);
}

/* The subtree at depth holding at most the leaf (p0, value0, attached0), hash h0 (NULL:
   an empty subtree), after changes[lo:hi]: each change resolved in order, then built
   (maptree.StateMap._update's empty case, _merge_leaf). */
static int rebuild(Descent *d, PyObject *h0, PyObject *p0, PyObject *value0, PyObject *attached0, int depth,
                   PyObject *changes, Py_ssize_t lo, Py_ssize_t hi, PyObject **rh, int *rk) {
    Py_ssize_t room = hi - lo + 1, n = 0;
    Entry *es = PyMem_Calloc((size_t)room, sizeof(Entry));
    if (es == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int r = 0, met = 0;
    for (Py_ssize_t i = lo; i < hi && r == 0; i++) {
        PyObject *item = PyTuple_GET_ITEM(changes, i), *p = PyTuple_GET_ITEM(item, 0);
        int same = h0 != NULL && same_hash(p, p0);
        Entry *e = es + n;
        r = same ? resolve(PyTuple_GET_ITEM(item, 1), value0, attached0, &e->value, &e->attached)
                 : resolve(PyTuple_GET_ITEM(item, 1), NULL, NULL, &e->value, &e->attached);
        if (r < 0)
            break;
        if (same) {
            met = 1;
            if (e->value != NULL && PyBytes_GET_SIZE(e->value) == PyBytes_GET_SIZE(value0) &&
                memcmp(PyBytes_AS_STRING(e->value), PyBytes_AS_STRING(value0), (size_t)PyBytes_GET_SIZE(value0)) == 0)
                e->kept = h0; /* unchanged: the stored leaf stays, attachment and all */
            else
                r = PyList_Append(d->replaced, h0);
        }
        if (e->value != NULL) { /* else deleted, or an absent path's delete */
            e->p = p;
            n++;
        }
    }
    if (r == 0 && h0 != NULL && !met) { /* the leaf stays as it is, beside the new entries */
        es[n] = (Entry){p0, Py_NewRef(value0), Py_NewRef(attached0), h0};
        n++;
    }
    if (r == 0) {
        qsort(es, (size_t)n, sizeof(Entry), path_cmp);
        r = new_subtree(d, es, n, depth, rh, rk);
    }
    clear_entries(es, n);
    PyMem_Free(es);
    return r;
}

/* An empty subtree after changes[lo:hi]. */
static int into_empty(Descent *d, int depth, PyObject *changes, Py_ssize_t lo, Py_ssize_t hi, PyObject **rh,
                      int *rk) {
    return rebuild(d, NULL, NULL, NULL, NULL, depth, changes, lo, hi, rh, rk);
}

/* The subtree that held only leaf h, after changes[lo:hi] (maptree._merge_leaf). */
static int into_leaf(Descent *d, PyObject *h, int depth, PyObject *changes, Py_ssize_t lo, Py_ssize_t hi,
                     PyObject **rh, int *rk) {
    PyObject *leaf = load(d, h, 0);
    if (leaf == NULL)
        return -1;
    if (!is_hash(PyTuple_GET_ITEM(leaf, 1)) || !PyBytes_CheckExact(PyTuple_GET_ITEM(leaf, 2)) ||
        !PyBytes_CheckExact(PyTuple_GET_ITEM(leaf, 3))) {
        Py_DECREF(leaf);
        return broken("a leaf is (True, path, value, attached)");
    }
    int r = rebuild(d, h, PyTuple_GET_ITEM(leaf, 1), PyTuple_GET_ITEM(leaf, 2), PyTuple_GET_ITEM(leaf, 3), depth,
                    changes, lo, hi, rh, rk);
    Py_DECREF(leaf);
    return r;
}

/* The tile h at depth after changes[lo:hi] (maptree.StateMap._update, its tile case). */
static int into_tile(Descent *d, PyObject *h, int depth, PyObject *changes, Py_ssize_t lo, Py_ssize_t hi,
                     PyObject **rh, int *rk) {
    if (depth >= PATH_BITS) {
        PyErr_SetString(store_corrupt, "state map tiles nest deeper than 256 levels");
        return -1;
    }
    PyObject *tile = load(d, h, 1);
    if (tile == NULL)
        return -1;
    PyObject *t_hs = PyTuple_CheckExact(tile) && PyTuple_GET_SIZE(tile) == 2 ? PyTuple_GET_ITEM(tile, 0) : NULL;
    PyObject *t_ks = t_hs ? PyTuple_GET_ITEM(tile, 1) : NULL;
    if (!t_hs || !PyTuple_CheckExact(t_hs) || PyTuple_GET_SIZE(t_hs) != POSITIONS || !PyBytes_CheckExact(t_ks) ||
        PyBytes_GET_SIZE(t_ks) != POSITIONS) {
        Py_DECREF(tile);
        return broken("a tile is (32 hashes, 32 kinds)");
    }
    PyObject *hs[POSITIONS];
    unsigned char ks[POSITIONS];
    memcpy(ks, PyBytes_AS_STRING(t_ks), POSITIONS);
    for (int i = 0; i < POSITIONS; i++)
        hs[i] = Py_NewRef(PyTuple_GET_ITEM(t_hs, i));
    Py_DECREF(tile);
    for (int i = 0; i < POSITIONS; i++) {
        if (!is_hash(hs[i]) || ks[i] > K_INNER) {
            broken("a tile's positions are hashes of a known kind");
            goto fail;
        }
    }
    uint32_t touched = 0;
    for (Py_ssize_t i = lo, j; i < hi; i = j) {
        int s = slot_of(changes, i, depth);
        for (j = i + 1; j < hi && slot_of(changes, j, depth) == s; j++) {
        }
        PyObject *sub;
        int kind;
        if (descend(d, hs[s], ks[s], depth + TILE_LEVELS, changes, i, j, &sub, &kind) < 0)
            goto fail;
        if (kind != ks[s] || !same_hash(sub, hs[s])) {
            Py_SETREF(hs[s], sub);
            ks[s] = (unsigned char)kind;
            touched |= 1u << s;
        } else {
            Py_DECREF(sub);
        }
    }
    if (!touched) { /* deletes of absent paths, or writes of unchanged values */
        *rh = Py_NewRef(h);
        *rk = K_INNER;
        goto done;
    }
    if (PyList_Append(d->replaced, h) < 0 || settle(hs, ks, touched) < 0)
        goto fail;
    if (ks[1] != K_INNER) { /* what is left is one entry, or none: no tile */
        *rh = Py_NewRef(hs[1]);
        *rk = ks[1];
        goto done;
    }
    *rk = K_INNER;
    *rh = new_tile(d, hs, ks); /* steals hs */
    return *rh ? 0 : -1;
done:
    for (int i = 0; i < POSITIONS; i++)
        Py_DECREF(hs[i]);
    return 0;
fail:
    for (int i = 0; i < POSITIONS; i++)
        Py_DECREF(hs[i]);
    return -1;
}

static int descend(Descent *d, PyObject *h, int kind, int depth, PyObject *changes, Py_ssize_t lo, Py_ssize_t hi,
                   PyObject **rh, int *rk) {
    switch (kind) {
    case K_EMPTY:
        return into_empty(d, depth, changes, lo, hi, rh, rk);
    case K_LEAF:
        return into_leaf(d, h, depth, changes, lo, hi, rh, rk);
    case K_INNER:
        return into_tile(d, h, depth, changes, lo, hi, rh, rk);
    default:
        return broken("a subtree's kind is empty, leaf or inner");
    }
}

static int is_prefix(PyObject *b) { return PyBytes_CheckExact(b) && PyBytes_GET_SIZE(b) <= PREFIX_BYTES_MAX; }

static void set_prefix(PyObject *b, unsigned char *into, Py_ssize_t *len) {
    *len = PyBytes_GET_SIZE(b);
    memcpy(into, PyBytes_AS_STRING(b), (size_t)*len);
}

PyDoc_STRVAR(configure_doc, "configure(empty_root, inner_prefix, leaf_prefix, value_prefix, no_attachment, "
                            "store_corrupt, list_append): what maptree and statemap define, set once at "
                            "maptree's import.");

/* The module's state is these statics, set here, all checked before any is changed: one
   module per process (single-phase init, as maptree imports it); nothing changes them
   while a descent runs. */
static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *empty, *inner, *leaf, *value, *none_attached, *corrupt, *lists;
    if (!PyArg_ParseTuple(args, "OOOOOOO", &empty, &inner, &leaf, &value, &none_attached, &corrupt, &lists))
        return NULL;
    if (!is_hash(empty) || !is_prefix(inner) || !is_prefix(leaf) || !is_prefix(value) ||
        !PyBytes_CheckExact(none_attached) || PyBytes_GET_SIZE(none_attached) != 0 ||
        !PyExceptionClass_Check(corrupt) || !PyCallable_Check(lists))
        return broken("configure(empty_root, three prefixes of at most 64 bytes, b\"\", StoreCorrupt, "
                      "the Python list append)"), NULL;
    set_prefix(inner, inner_prefix, &inner_len);
    set_prefix(leaf, leaf_prefix, &leaf_len);
    set_prefix(value, value_prefix, &value_len);
    Py_XSETREF(empty_root, Py_NewRef(empty));
    Py_XSETREF(no_attachment, Py_NewRef(none_attached));
    Py_XSETREF(store_corrupt, Py_NewRef(corrupt));
    Py_XSETREF(maplists_python, Py_NewRef(lists));
    Py_RETURN_NONE;
}

PyDoc_STRVAR(update_doc, "update(node, out, root, kind, changes) -> (hash, kind): "
                         "maptree.StateMap._update from the root, over all of changes (a list of (path, change), "
                         "sorted, paths checked), new nodes into out's raw, parsed and replaced.");

static PyObject *update(PyObject *self, PyObject *args) {
    Descent d = {NULL, NULL, NULL, NULL, NULL};
    PyObject *root, *given;
    int kind;
    if (!PyArg_ParseTuple(args, "OOOiO!", &d.node, &d.out, &root, &kind, &PyList_Type, &given))
        return NULL;
    if (empty_root == NULL)
        return broken("configure() first"), NULL;
    if (!is_hash(root))
        return broken("a root is 32 bytes"), NULL;
    /* A tuple of our own: what an update does to the caller's list cannot reach the
       items the descent borrows. */
    PyObject *changes = PyList_AsTuple(given), *answer = NULL, *h = NULL;
    if (changes == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(changes);
    int k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(changes, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2 || !is_hash(PyTuple_GET_ITEM(item, 0))) {
            broken("a change is (32-byte path, change)");
            goto done;
        }
    }
    if (n == 0) {
        answer = Py_BuildValue("(Oi)", root, kind);
        goto done;
    }
    if ((d.raw = PyObject_GetAttrString(d.out, "raw")) == NULL ||
        (d.parsed = PyObject_GetAttrString(d.out, "parsed")) == NULL ||
        (d.replaced = PyObject_GetAttrString(d.out, "replaced")) == NULL)
        goto done;
    if (!PyDict_CheckExact(d.raw) || !PyDict_CheckExact(d.parsed) || !PyList_CheckExact(d.replaced)) {
        broken("out holds raw and parsed dicts and a replaced list");
        goto done;
    }
    if (descend(&d, root, kind, 0, changes, 0, n, &h, &k) == 0)
        answer = Py_BuildValue("(Ni)", h, k);
done:
    Py_XDECREF(d.raw);
    Py_XDECREF(d.parsed);
    Py_XDECREF(d.replaced);
    Py_DECREF(changes);
    return answer;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
    {"update", update, METH_VARARGS, update_doc},
    {"list_append", maplists_append, METH_VARARGS, maplists_append_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ledgernode._mapcore",
    "The state map's descent, compiled (maptree.py holds the definition and the Python descent).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__mapcore(void) { return PyModule_Create(&module); }
