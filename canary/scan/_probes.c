/* The probe test of the scan's hot loop, in C.
 *
 * canary/scan/verify.py (_fingerprint_hits_bulk) has, per 16 MB of a leak checked against
 * 100,000 canaries, about 150,000 fingerprint hits (a birth date, surname or first name of
 * some canary) left after its numpy tests, and tests each against its canaries' probes
 * (PatternSet.checks: a lower-case letter run of the other name) in the hit's line: about
 * 600,000 substring tests. In Python the loop was 0.3 s of the 0.8 s of CPU a chunk took;
 * here it is a few milliseconds. The Python loop stays as the fallback (no compiler at
 * install time) and the tests check that both give the same answer.
 *
 * passing(low, literals, begins, stops, slow, table) -> list
 *   low       the chunk, lower-cased (bytes.lower)
 *   literals  int64 buffer: the literal of each hit
 *   begins    int64 buffer: start of each hit's line in low
 *   stops     int64 buffer: end of each hit's line in low
 *   slow      one byte per hit: non-zero for a line whose canaries are all tried (no probe test)
 *   table     PatternSet.probe_table: the checks flattened (int32 buffers, see there)
 * returns [hit, indexes, hit, indexes, ...] in hit order: for a slow hit its check's owners,
 * else each group whose probe is in the hit's line. An input of the wrong shape raises (the
 * table comes from a cache file: never read past a buffer on its word).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Whether needle (m bytes) is in hay (n bytes). Lines are short (about 150 bytes) and
 * probes 3-8 bytes: memchr on the first byte, then memcmp. */
static int
contains(const char *hay, Py_ssize_t n, const char *needle, Py_ssize_t m)
{
    if (m == 0)
        return 1;
    if (m > n)
        return 0;
    const char *last = hay + (n - m);
    const char *at = hay;
    while (at <= last) {
        at = memchr(at, needle[0], (size_t)(last - at) + 1);
        if (at == NULL)
            return 0;
        if (memcmp(at + 1, needle + 1, (size_t)(m - 1)) == 0)
            return 1;
        at++;
    }
    return 0;
}

/* The byte pairs of one line, one bit each: a probe with a pair the line lacks is not in it,
 * which rules out most probes in a few loads (a line has about 150 pairs of the 65,536). The
 * bits set are cleared again by walking the same line, cheaper than clearing 8 KB. */
typedef struct {
    uint64_t bits[1024];
} Pairs;

static inline unsigned
pair_at(const unsigned char *at)
{
    return ((unsigned)at[0] << 8) | at[1];
}

static void
pairs_mark(Pairs *pairs, const unsigned char *line, Py_ssize_t size, int on)
{
    for (Py_ssize_t i = 0; i + 1 < size; i++) {
        unsigned pair = pair_at(line + i);
        if (on)
            pairs->bits[pair >> 6] |= (uint64_t)1 << (pair & 63);
        else
            pairs->bits[pair >> 6] = 0;
    }
}

static inline int
pairs_hold(const Pairs *pairs, const unsigned char *probe, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i + 1 < size; i++) {
        unsigned pair = pair_at(probe + i);
        if (!(pairs->bits[pair >> 6] & ((uint64_t)1 << (pair & 63))))
            return 0;
    }
    return 1;
}

/* Appends hit and indexes to out; -1 on error. */
static int
emit(PyObject *out, Py_ssize_t hit, PyObject *indexes)
{
    PyObject *number = PyLong_FromSsize_t(hit);
    if (number == NULL)
        return -1;
    int failed = PyList_Append(out, number);
    Py_DECREF(number);
    if (failed)
        return -1;
    return PyList_Append(out, indexes);
}

static PyObject *
passing(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer low, literals, begins, stops, slow;
    Py_buffer of_literal = {0}, starts = {0}, ends = {0}, probes = {0};
    PyObject *table, *indexes, *owners, *out = NULL;
    Pairs *pairs = NULL;

    if (!PyArg_ParseTuple(args, "y*y*y*y*y*O!:passing", &low, &literals, &begins, &stops, &slow,
                          &PyTuple_Type, &table))
        return NULL;
    if (!PyArg_ParseTuple(table, "y*y*y*y*O!O!:passing table", &of_literal, &starts, &ends, &probes,
                          &PyList_Type, &indexes, &PyList_Type, &owners))
        goto done;
    Py_ssize_t count = literals.len / (Py_ssize_t)sizeof(int64_t);
    if (literals.len % (Py_ssize_t)sizeof(int64_t) || begins.len != literals.len
            || stops.len != literals.len || slow.len != count) {
        PyErr_SetString(PyExc_ValueError, "passing: literals, begins, stops and slow differ in length");
        goto done;
    }
    const int64_t *literal = literals.buf, *begin = begins.buf, *stop = stops.buf;
    const unsigned char *is_slow = slow.buf, *text = low.buf;
    const int32_t *check_of = of_literal.buf, *first_group = starts.buf, *probe_end = ends.buf;
    const unsigned char *probe_text = probes.buf;
    Py_ssize_t known = of_literal.len / 4, checks = starts.len / 4 - 1, groups = ends.len / 4 - 1;
    if (checks != PyList_GET_SIZE(owners) || groups != PyList_GET_SIZE(indexes)) {
        PyErr_SetString(PyExc_ValueError, "passing: the table's parts differ in length");
        goto done;
    }

    pairs = PyMem_Calloc(1, sizeof(Pairs));
    out = PyList_New(0);
    if (pairs == NULL || out == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    int64_t marked_begin = -1, marked_stop = -1;
    for (Py_ssize_t hit = 0; hit < count; hit++) {
        if (literal[hit] < 0 || literal[hit] >= known || begin[hit] < 0 || begin[hit] > stop[hit]
                || stop[hit] > low.len) {
            PyErr_Format(PyExc_ValueError, "passing: hit %zd outside the literals or the chunk", hit);
            goto fail;
        }
        int32_t check = check_of[literal[hit]];
        if (check < 0 || check >= checks) {
            PyErr_Format(PyExc_TypeError, "passing: no check for the literal of hit %zd", hit);
            goto fail;
        }
        if (is_slow[hit]) {
            if (emit(out, hit, PyList_GET_ITEM(owners, check)))
                goto fail;
            continue;
        }
        const unsigned char *line = text + begin[hit];
        Py_ssize_t size = (Py_ssize_t)(stop[hit] - begin[hit]);
        if (begin[hit] != marked_begin || stop[hit] != marked_stop) {  /* a new line */
            if (marked_begin >= 0)
                pairs_mark(pairs, text + marked_begin, (Py_ssize_t)(marked_stop - marked_begin), 0);
            pairs_mark(pairs, line, size, 1);
            marked_begin = begin[hit];
            marked_stop = stop[hit];
        }
        int32_t group = first_group[check], last = first_group[check + 1];
        if (group < 0 || last < group || last > groups) {
            PyErr_SetString(PyExc_ValueError, "passing: a check's groups are outside the table");
            goto fail;
        }
        for (; group < last; group++) {
            int32_t from = probe_end[group], to = probe_end[group + 1];
            if (from < 0 || to < from || to > probes.len) {
                PyErr_SetString(PyExc_ValueError, "passing: a probe is outside the table");
                goto fail;
            }
            const unsigned char *probe = probe_text + from;
            if (pairs_hold(pairs, probe, to - from)
                    && contains((const char *)line, size, (const char *)probe, to - from)
                    && emit(out, hit, PyList_GET_ITEM(indexes, group)))
                goto fail;
        }
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyMem_Free(pairs);
    PyBuffer_Release(&low);
    PyBuffer_Release(&literals);
    PyBuffer_Release(&begins);
    PyBuffer_Release(&stops);
    PyBuffer_Release(&slow);
    if (of_literal.obj != NULL) {
        PyBuffer_Release(&of_literal);
        PyBuffer_Release(&starts);
        PyBuffer_Release(&ends);
        PyBuffer_Release(&probes);
    }
    return out;
}

/* Hits: the match handler given to Hyperscan (canary/scan/engines.py). Hyperscan's Python
 * binding calls it once per match, about 320,000 times per 16 MB with 100,000 canaries; a
 * Python function there (two list appends) cost about twice what this does. It keeps the
 * literal and end offset of each match; take() hands them over as bytes of int64 pairs. */
typedef struct {
    PyObject_HEAD
    int64_t *pairs;
    Py_ssize_t size, capacity;  /* in int64 items */
} Hits;

static void
Hits_dealloc(Hits *self)
{
    PyMem_Free(self->pairs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Hits_call(Hits *self, PyObject *args, PyObject *kwargs)
{
    if (kwargs != NULL || PyTuple_GET_SIZE(args) != 5) {
        PyErr_SetString(PyExc_TypeError, "Hits(literal, start, end, flags, context)");
        return NULL;
    }
    long long literal = PyLong_AsLongLong(PyTuple_GET_ITEM(args, 0));
    long long end = PyLong_AsLongLong(PyTuple_GET_ITEM(args, 2));
    if ((literal == -1 || end == -1) && PyErr_Occurred())
        return NULL;
    if (self->size + 2 > self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 1 << 16;
        int64_t *grown = PyMem_Realloc(self->pairs, (size_t)capacity * sizeof(int64_t));
        if (grown == NULL)
            return PyErr_NoMemory();
        self->pairs = grown;
        self->capacity = capacity;
    }
    self->pairs[self->size++] = literal;
    self->pairs[self->size++] = end;
    Py_RETURN_NONE;  /* None: Hyperscan goes on */
}

static PyObject *
Hits_take(Hits *self, PyObject *unused)
{
    (void)unused;
    PyObject *out = PyBytes_FromStringAndSize((const char *)self->pairs, self->size * (Py_ssize_t)sizeof(int64_t));
    if (out != NULL)
        self->size = 0;
    return out;
}

static PyMethodDef Hits_methods[] = {
    {"take", (PyCFunction)Hits_take, METH_NOARGS,
     "take() -> bytes: the (literal, end) pairs kept so far, as native int64, and forget them."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HitsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "canary.scan._probes.Hits",
    .tp_doc = "Hits(): a Hyperscan match handler keeping (literal, end) of each match.",
    .tp_basicsize = sizeof(Hits),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Hits_dealloc,
    .tp_call = (ternaryfunc)Hits_call,
    .tp_methods = Hits_methods,
};

static PyMethodDef methods[] = {
    {"passing", passing, METH_VARARGS,
     "passing(low, literals, begins, stops, slow, table) -> [hit, indexes, ...]: the hits whose "
     "probes are in their line (see canary/scan/verify.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "canary.scan._probes",
    "The scan's two hot loops in C: the probe test (canary/scan/verify.py keeps the Python one) and the "
    "Hyperscan match handler (canary/scan/engines.py keeps the Python one).", -1, methods,
};

PyMODINIT_FUNC
PyInit__probes(void)
{
    if (PyType_Ready(&HitsType) < 0)
        return NULL;
    PyObject *created = PyModule_Create(&module);
    if (created == NULL)
        return NULL;
    Py_INCREF(&HitsType);
    if (PyModule_AddObject(created, "Hits", (PyObject *)&HitsType) < 0) {
        Py_DECREF(&HitsType);
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
