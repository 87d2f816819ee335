"""devstack/farm_fingerprint.py: the C FarmHash the local stack gives bqemulator's FARM_FINGERPRINT.

Judged three ways: against bqemulator's own pure-Python function (equal up to 64 UTF-8 bytes),
against a reference port of farmhash.cc's ``farmhashna::Hash64`` built from bqemulator's helper
functions (equal at every length: bqemulator's own long-input path deviates from farmhash.cc),
against BigQuery's documented FARM_FINGERPRINT examples, and through the local stack's query path.
"""

from __future__ import annotations

import random

import pyarrow as pa
from bqemulator.sql import builtin_udfs as bu
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from devstack.farm_fingerprint import farm_fingerprint, farm_fingerprints
from devstack.stack import StackInfo

M = bu._U64_MASK


def _signed(unsigned: int) -> int:
    return unsigned - (1 << 64) if unsigned & bu._I64_SIGN_BIT else unsigned


def _reference_long(data: bytes) -> int:
    """farmhash.cc ``farmhashna::Hash64`` for more than 64 bytes, line by line."""
    n = len(data)
    seed = 81
    x = seed
    y = (seed * bu._FH_K1 + 113) & M
    z = (bu._fh_shift_mix((y * bu._FH_K2 + 113) & M) * bu._FH_K2) & M
    v, w = (0, 0), (0, 0)
    x = (x * bu._FH_K2 + bu._fh_fetch64(data, 0)) & M
    end = ((n - 1) // 64) * 64
    s = 0
    while True:
        x = (bu._fh_rotate((x + y + v[0] + bu._fh_fetch64(data, s + 8)) & M, 37) * bu._FH_K1) & M
        y = (bu._fh_rotate((y + v[1] + bu._fh_fetch64(data, s + 48)) & M, 42) * bu._FH_K1) & M
        x ^= w[1]
        y = (y + v[0] + bu._fh_fetch64(data, s + 40)) & M
        z = (bu._fh_rotate((z + w[0]) & M, 33) * bu._FH_K1) & M
        v = bu._fh_weak_hash_len_32_with_seeds(data, s, (v[1] * bu._FH_K1) & M, (x + w[0]) & M)
        w = bu._fh_weak_hash_len_32_with_seeds(data, s + 32, (z + w[1]) & M, (y + bu._fh_fetch64(data, s + 16)) & M)
        z, x = x, z
        s += 64
        if s == end:
            break
    mul = (bu._FH_K1 + ((z & 0xFF) << 1)) & M
    s = n - 64
    w = ((w[0] + ((n - 1) & 63)) & M, w[1])
    v = ((v[0] + w[0]) & M, v[1])
    w = ((w[0] + v[0]) & M, w[1])
    x = (bu._fh_rotate((x + y + v[0] + bu._fh_fetch64(data, s + 8)) & M, 37) * mul) & M
    y = (bu._fh_rotate((y + v[1] + bu._fh_fetch64(data, s + 48)) & M, 42) * mul) & M
    x ^= (w[1] * 9) & M
    y = (y + ((v[0] * 9) & M) + bu._fh_fetch64(data, s + 40)) & M
    z = (bu._fh_rotate((z + w[0]) & M, 33) * mul) & M
    v = bu._fh_weak_hash_len_32_with_seeds(data, s, (v[1] * mul) & M, (x + w[0]) & M)
    w = bu._fh_weak_hash_len_32_with_seeds(data, s + 32, (z + w[1]) & M, (y + bu._fh_fetch64(data, s + 16)) & M)
    z, x = x, z
    return bu._fh_hash_len_16_mul(
        (bu._fh_hash_len_16_mul(v[0], w[0], mul) + ((bu._fh_shift_mix(y) * bu._FH_K0) & M) + z) & M,
        (bu._fh_hash_len_16_mul(v[1], w[1], mul) + x) & M,
        mul,
    )


def reference(value: str) -> int:
    data = value.encode("utf-8")
    return _signed(_reference_long(data) if len(data) > 64 else bu._farm_fingerprint64(data))


def inputs() -> list[str]:
    rng = random.Random(17)
    fixed = ["", "a", "hello", "1footrue", "é", "日本語", "🙂" * 5, "\x00", '"quoted \\" json"', "null", "x" * 64]
    lengths = [15, 16, 17, 31, 32, 33, 63, 64, 65, 66, 127, 128, 129, 1000, 2048, 10_000]
    sized = ["".join(chr(rng.randrange(32, 127)) for _ in range(n)) for n in lengths]
    unicode = [
        "".join(chr(rng.choice([rng.randrange(32, 0x800), rng.randrange(0x4E00, 0x9FFF), 0x1F600])) for _ in range(n))
        for n in range(0, 300, 7)
    ]
    return fixed + sized + unicode


def test_equals_bqemulators_own_function_up_to_64_bytes() -> None:
    short = [s for s in inputs() if len(s.encode()) <= 64]
    assert len(short) > 20
    for value in short:
        assert farm_fingerprint(value) == bu.bqemu_farm_fingerprint(value), value
    assert farm_fingerprint(None) is None and bu.bqemu_farm_fingerprint(None) is None


def test_equals_farmhash_reference_at_every_length() -> None:
    values = inputs()
    assert sum(len(s.encode()) > 64 for s in values) > 20
    for value in values:
        assert farm_fingerprint(value) == reference(value), value[:80]


def test_bqemulators_long_input_path_is_not_farmhash() -> None:
    # Why the values change for long inputs on the local stack (devstack/farm_fingerprint.py).
    long = [s for s in inputs() if len(s.encode()) > 64]
    assert all(bu.bqemu_farm_fingerprint(s) != reference(s) for s in long)


def test_bigquery_documented_examples() -> None:
    # cloud.google.com/bigquery/docs/reference/standard-sql/hash_functions#farm_fingerprint
    assert farm_fingerprint("1footrue") == -1541654101129638711
    assert farm_fingerprint("2applefalse") == 2794438866806483259
    assert farm_fingerprint("3true") == -4880158226897771312


def test_a_vector_gives_each_value_s_fingerprint_and_keeps_nulls() -> None:
    values = [None, *inputs()[:50], None, "3true", None]
    vector = pa.array(["pad", *values])[1:]  # an offset, as DuckDB hands slices of a chunk
    fingerprints = farm_fingerprints(vector)
    assert fingerprints.type == pa.int64()
    assert fingerprints.to_pylist() == [farm_fingerprint(v) for v in values]
    assert fingerprints.null_count == 3
    assert farm_fingerprints(pa.array(["1footrue"])).to_pylist() == [-1541654101129638711]


def test_the_local_stack_runs_it(bare_stack: StackInfo) -> None:
    bq = bigquery.Client(
        project=bare_stack.project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=bare_stack.bigquery_url),
    )
    long, short = "y" * 200, "3true"
    row = list(bq.query(f"SELECT FARM_FINGERPRINT('{long}') AS a, FARM_FINGERPRINT('{short}') AS b").result())[0]
    assert row["a"] == farm_fingerprint(long) != bu.bqemu_farm_fingerprint(long)
    assert row["b"] == -4880158226897771312
    rows = bq.query("SELECT s, FARM_FINGERPRINT(s) AS f FROM UNNEST(['3true', NULL, 'x', NULL]) AS s").result()
    assert [(r["s"], r["f"]) for r in rows] == [(v, farm_fingerprint(v)) for v in ("3true", None, "x", None)]
