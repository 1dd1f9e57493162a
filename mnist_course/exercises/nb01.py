"""The checks of notebook 01, exploring MNIST (notebooks/01_exploring_mnist.ipynb): decoding an IDX
header (01.1), standardising with the training set's statistics (01.2), the batch iterator's
shuffled index batches (01.3).

Named after the notebook's number, as the exercise ids are ("01.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`.
"""

from __future__ import annotations

import numpy as np

from .core import Mistake, as_int, call, exercise, expect, seeded_rng


def _idx(type_code: int, dims, payload: bytes = b"\x07" * 12) -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload


@exercise("01.1", "read_idx_header", "decode an IDX header", hint="""
    An IDX file starts with a small header: a 4-byte "magic number" (two zero bytes, a byte for the
    data type, a byte for the number of dimensions), then one size per dimension, then the data. The
    usual mistakes: reading the sizes in the wrong byte order (IDX is big-endian: the most significant
    byte comes first), mixing up bytes 2 and 3, and taking the header to be 16 bytes long (true only for
    3 dimensions).""",
          formula="""
    Steps: 1. The type code is byte 2 and the number of dimensions d is byte 3. 2. Size number i
    (i = 0 ... d - 1) is the 4 bytes starting at 4 + 4i, read as a big-endian unsigned integer (Python's
    int.from_bytes with the byte order "big"). 3. The data start right after the last size, at
    4 + 4d. Do not use the length of raw: it holds more bytes than the header.""")
def _check_idx(fn):
    cases = {"the training images' header": (0x08, (60000, 28, 28)), "the labels' header": (0x08, (60000,)),
             "a 2-D float32 header (type code 0x0D)": (0x0D, (3, 70000))}
    for case, (code, dims) in cases.items():
        out = call(fn, _idx(code, dims), case=case)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Mistake(f"{case}: return three things, (type_code, shape, offset); got {out!r}.")
        got_code, shape, offset = out
        if as_int(got_code, "type_code", case) != code:
            raise Mistake(f"{case}: type code {got_code!r}, expected {code}"
                          + (": byte 2 is the type code, byte 3 the number of dimensions." if got_code == len(dims) else "."))
        try:
            shape = tuple(int(d) for d in shape)
        except TypeError:
            raise Mistake(f"{case}: shape should be a tuple of sizes, got {shape!r}.") from None
        little = tuple(int.from_bytes(d.to_bytes(4, "big"), "little") for d in dims)
        if shape == little != dims:
            raise Mistake(f"{case}: shape {shape}: you read the sizes as little-endian; IDX stores them "
                          'big-endian, int.from_bytes(..., "big").')
        if shape != dims:
            raise Mistake(f"{case}: shape {shape}, expected {dims}.")
        offset, right = as_int(offset, "offset", case), 4 + 4 * len(dims)
        if offset != right:
            why = {16: ": 16 is right only for 3 dimensions; the header is 4 + 4 * ndim bytes long.",
                   4 * len(dims): ": the 4 bytes of the magic number come first, offset = 4 + 4 * ndim."}
            raise Mistake(f"{case}: offset {offset}, expected {right}{why.get(offset, '.')}")
    return "images, labels and a float header decoded"


@exercise("01.2", "standardize", "standardise with the training set's statistics", hint="""
    Standardising subtracts a mean and divides by a standard deviation, so the network sees
    pixels centred on 0 with a spread of 1. The statistics are the TRAINING set's: one mean and one
    standard deviation over all of its pixels, applied to any batch. The usual mistakes: the statistics
    of the batch itself (the test set stays unseen, and one image has statistics of its own), a mean and
    std per pixel position, and forgetting to subtract the mean.""",
          formula="""
    With x = X / 255 and t = X_train / 255, both as floats: mu = the mean of every entry of t,
    sigma = the standard deviation of every entry of t (two plain numbers, not arrays); the result is
    (x - mu) / sigma, with X's shape.""")
def _check_standardize(fn):
    rng = seeded_rng(1)
    X_train = (rng.random((300, 28, 28)) < 0.3) * rng.integers(1, 256, (300, 28, 28))
    X_train = X_train.astype(np.uint8)
    train = X_train / 255
    m, s = train.mean(), train.std()
    for case, X in {"a batch of 5 test images": rng.integers(0, 256, (5, 28, 28)).astype(np.uint8),
                    "a batch of one image": rng.integers(0, 256, (1, 28, 28)).astype(np.uint8)}.items():
        out = call(fn, X, X_train, case=case)
        if isinstance(out, np.ndarray) and not np.issubdtype(out.dtype, np.floating):
            raise Mistake(f"{case}: the result has an integer dtype; convert to float before scaling (X.astype(np.float32)).")
        x = X / 255
        with np.errstate(divide="ignore", invalid="ignore"):
            mistakes = [((x - x.mean()) / x.std(), "you used the mean and std of X itself: always use the "
                         "training set's (the test set stays unseen, and one image has its own statistics)."),
                        ((x - train.mean(0)) / train.std(0), "you computed a mean and std per pixel position; "
                         "use one mean and one std over all training pixels."),
                        (x / s, "you forgot to subtract the mean before dividing by the std.")]
        expect(out, (x - m) / s, case, mistakes=mistakes, atol=1e-4, rtol=1e-4)
    return "test batches and a single image standardised with the training statistics"


@exercise("01.3", "batch_indices", "the batch iterator's index batches", hint="""
    One epoch visits every example once, in a fresh random order: shuffle the indices 0 ... n - 1
    once, with a random generator made from seed (the same seed must give the same batches), then cut
    the shuffled order into consecutive pieces. The usual mistakes: no shuffle, NumPy's global random
    state instead of the seed, and losing the last, smaller batch (or keeping it when drop_last asks
    to drop it).""",
          formula="""
    Steps: 1. A random permutation of 0 ... n - 1 from a NumPy Generator built from seed
    (np.random.default_rng). 2. Batch k holds entries k*b to k*b + b - 1 of that order (b = batch_size),
    for k = 0, 1, 2, ... 3. When n is not a multiple of b the last batch has n mod b entries: keep it,
    unless drop_last, then stop at the largest multiple of b.""")
def _check_batches(fn):
    def run(n, bs, seed, drop_last, case):
        out = call(fn, n, bs, seed, drop_last=drop_last, case=case)
        try:
            return [np.asarray(b).astype(np.int64).reshape(-1) for b in out]
        except (TypeError, ValueError):
            raise Mistake(f"{case}: return a list of index arrays, got {type(out).__name__}.") from None

    for n, bs, drop_last in ((10, 3, False), (10, 3, True), (12, 4, False), (5, 8, False), (100, 32, False)):
        case = f"n={n}, batch_size={bs}, drop_last={drop_last}"
        batches = run(n, bs, 0, drop_last, case)
        sizes, full = [len(b) for b in batches], [bs] * (n // bs)
        want = full if drop_last or n % bs == 0 else full + [n % bs]
        if sizes != want:
            if not drop_last and sizes == full:
                raise Mistake(f"{case}: batch sizes {sizes}: the last, smaller batch of {n % bs} is missing; "
                              "keep it unless drop_last=True.")
            if drop_last and sizes == full + [n % bs]:
                raise Mistake(f"{case}: batch sizes {sizes}: drop_last=True must leave out the last, smaller batch.")
            raise Mistake(f"{case}: batch sizes {sizes}, expected {want}.")
        seen = np.concatenate(batches) if batches else np.zeros(0, np.int64)
        if len(np.unique(seen)) != len(seen) or not set(seen.tolist()) <= set(range(n)):
            raise Mistake(f"{case}: every index 0..{n - 1} must appear at most once; yours repeat or go out of "
                          "range (check the slice bounds).")
        if n == 100 and np.array_equal(seen, np.arange(len(seen))):
            raise Mistake(f"{case}: the batches come in order 0, 1, 2, ...: shuffle first, with "
                          "np.random.default_rng(seed).permutation(n).")
    case = "n=100, batch_size=32, twice with seed 0"
    if not all(np.array_equal(a, b) for a, b in zip(run(100, 32, 0, False, case), run(100, 32, 0, False, case))):
        raise Mistake(f"{case}: the same seed gave different batches: build the generator from seed inside "
                      "the function, np.random.default_rng(seed).")
    case = "n=100, batch_size=32, seeds 0 and 1"
    if all(np.array_equal(a, b) for a, b in zip(run(100, 32, 0, False, case), run(100, 32, 1, False, case))):
        raise Mistake(f"{case}: different seeds gave the same batches: use the seed argument.")
    return "sizes, drop_last, every index once, shuffled and reproducible"
