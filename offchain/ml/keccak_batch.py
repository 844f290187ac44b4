"""Batch keccak256 in native code: every fixed-size chunk of a buffer, and every level of a Merkle
tree, hashed in one call that releases the GIL and reads the caller's memory in place.

The kernels are compiled by numba (``nogil=True, cache=True``): the first use on a machine compiles
them (about 1.5 s, once) and stores the machine code beside this file (``__pycache__``); a later
process imports numba and loads them in about 0.4 s.  ``offchain.ml.commit`` imports this module
when it first hashes a large buffer (``NATIVE_LOAD_BYTES``) and keeps its per-call path when numba
is missing or a kernel fails to compile.

Data is read as little-endian 64-bit lanes (keccak's own lane order), so a chunk must be a whole
number of 8-byte words; digests are written as 4 lanes each (``out.tobytes()`` is the 32-byte
digests back to back).  Padding is Ethereum keccak's: ``0x01`` after the message, ``0x80`` in the
last byte of the 136-byte rate block (not NIST SHA3's ``0x06``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

RATE_WORDS = 17  # keccak256 absorbs 136 bytes (17 lanes) per permutation

_RC = np.array([
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
], dtype=np.uint64)

_S1 = np.uint64(1)
_S2 = np.uint64(2)
_S3 = np.uint64(3)
_S6 = np.uint64(6)
_S8 = np.uint64(8)
_S9 = np.uint64(9)
_S10 = np.uint64(10)
_S14 = np.uint64(14)
_S15 = np.uint64(15)
_S18 = np.uint64(18)
_S19 = np.uint64(19)
_S20 = np.uint64(20)
_S21 = np.uint64(21)
_S23 = np.uint64(23)
_S25 = np.uint64(25)
_S27 = np.uint64(27)
_S28 = np.uint64(28)
_S36 = np.uint64(36)
_S37 = np.uint64(37)
_S39 = np.uint64(39)
_S41 = np.uint64(41)
_S43 = np.uint64(43)
_S44 = np.uint64(44)
_S45 = np.uint64(45)
_S46 = np.uint64(46)
_S49 = np.uint64(49)
_S50 = np.uint64(50)
_S54 = np.uint64(54)
_S55 = np.uint64(55)
_S56 = np.uint64(56)
_S58 = np.uint64(58)
_S61 = np.uint64(61)
_S62 = np.uint64(62)
_S63 = np.uint64(63)
_PAD_FIRST = np.uint64(0x01)
_PAD_LAST = np.uint64(0x8000000000000000)


@njit(nogil=True, cache=True)
def _permute(s):  # pragma: no cover - compiled
    """Keccak-f[1600] on ``s`` (25 lanes, ``s[x + 5 * y]``), one round per loop pass on locals."""
    a00 = s[0]
    a01 = s[1]
    a02 = s[2]
    a03 = s[3]
    a04 = s[4]
    a05 = s[5]
    a06 = s[6]
    a07 = s[7]
    a08 = s[8]
    a09 = s[9]
    a10 = s[10]
    a11 = s[11]
    a12 = s[12]
    a13 = s[13]
    a14 = s[14]
    a15 = s[15]
    a16 = s[16]
    a17 = s[17]
    a18 = s[18]
    a19 = s[19]
    a20 = s[20]
    a21 = s[21]
    a22 = s[22]
    a23 = s[23]
    a24 = s[24]
    for r in range(24):
        rc = _RC[r]
        c0 = a00 ^ a05 ^ a10 ^ a15 ^ a20
        c1 = a01 ^ a06 ^ a11 ^ a16 ^ a21
        c2 = a02 ^ a07 ^ a12 ^ a17 ^ a22
        c3 = a03 ^ a08 ^ a13 ^ a18 ^ a23
        c4 = a04 ^ a09 ^ a14 ^ a19 ^ a24
        d0 = c4 ^ ((c1 << _S1) | (c1 >> _S63))
        d1 = c0 ^ ((c2 << _S1) | (c2 >> _S63))
        d2 = c1 ^ ((c3 << _S1) | (c3 >> _S63))
        d3 = c2 ^ ((c4 << _S1) | (c4 >> _S63))
        d4 = c3 ^ ((c0 << _S1) | (c0 >> _S63))
        b00 = a00 ^ d0
        b01 = (((a06 ^ d1) << _S44) | ((a06 ^ d1) >> _S20))
        b02 = (((a12 ^ d2) << _S43) | ((a12 ^ d2) >> _S21))
        b03 = (((a18 ^ d3) << _S21) | ((a18 ^ d3) >> _S43))
        b04 = (((a24 ^ d4) << _S14) | ((a24 ^ d4) >> _S50))
        b05 = (((a03 ^ d3) << _S28) | ((a03 ^ d3) >> _S36))
        b06 = (((a09 ^ d4) << _S20) | ((a09 ^ d4) >> _S44))
        b07 = (((a10 ^ d0) << _S3) | ((a10 ^ d0) >> _S61))
        b08 = (((a16 ^ d1) << _S45) | ((a16 ^ d1) >> _S19))
        b09 = (((a22 ^ d2) << _S61) | ((a22 ^ d2) >> _S3))
        b10 = (((a01 ^ d1) << _S1) | ((a01 ^ d1) >> _S63))
        b11 = (((a07 ^ d2) << _S6) | ((a07 ^ d2) >> _S58))
        b12 = (((a13 ^ d3) << _S25) | ((a13 ^ d3) >> _S39))
        b13 = (((a19 ^ d4) << _S8) | ((a19 ^ d4) >> _S56))
        b14 = (((a20 ^ d0) << _S18) | ((a20 ^ d0) >> _S46))
        b15 = (((a04 ^ d4) << _S27) | ((a04 ^ d4) >> _S37))
        b16 = (((a05 ^ d0) << _S36) | ((a05 ^ d0) >> _S28))
        b17 = (((a11 ^ d1) << _S10) | ((a11 ^ d1) >> _S54))
        b18 = (((a17 ^ d2) << _S15) | ((a17 ^ d2) >> _S49))
        b19 = (((a23 ^ d3) << _S56) | ((a23 ^ d3) >> _S8))
        b20 = (((a02 ^ d2) << _S62) | ((a02 ^ d2) >> _S2))
        b21 = (((a08 ^ d3) << _S55) | ((a08 ^ d3) >> _S9))
        b22 = (((a14 ^ d4) << _S39) | ((a14 ^ d4) >> _S25))
        b23 = (((a15 ^ d0) << _S41) | ((a15 ^ d0) >> _S23))
        b24 = (((a21 ^ d1) << _S2) | ((a21 ^ d1) >> _S62))
        a00 = b00 ^ (~b01 & b02) ^ rc
        a01 = b01 ^ (~b02 & b03)
        a02 = b02 ^ (~b03 & b04)
        a03 = b03 ^ (~b04 & b00)
        a04 = b04 ^ (~b00 & b01)
        a05 = b05 ^ (~b06 & b07)
        a06 = b06 ^ (~b07 & b08)
        a07 = b07 ^ (~b08 & b09)
        a08 = b08 ^ (~b09 & b05)
        a09 = b09 ^ (~b05 & b06)
        a10 = b10 ^ (~b11 & b12)
        a11 = b11 ^ (~b12 & b13)
        a12 = b12 ^ (~b13 & b14)
        a13 = b13 ^ (~b14 & b10)
        a14 = b14 ^ (~b10 & b11)
        a15 = b15 ^ (~b16 & b17)
        a16 = b16 ^ (~b17 & b18)
        a17 = b17 ^ (~b18 & b19)
        a18 = b18 ^ (~b19 & b15)
        a19 = b19 ^ (~b15 & b16)
        a20 = b20 ^ (~b21 & b22)
        a21 = b21 ^ (~b22 & b23)
        a22 = b22 ^ (~b23 & b24)
        a23 = b23 ^ (~b24 & b20)
        a24 = b24 ^ (~b20 & b21)
    s[0] = a00
    s[1] = a01
    s[2] = a02
    s[3] = a03
    s[4] = a04
    s[5] = a05
    s[6] = a06
    s[7] = a07
    s[8] = a08
    s[9] = a09
    s[10] = a10
    s[11] = a11
    s[12] = a12
    s[13] = a13
    s[14] = a14
    s[15] = a15
    s[16] = a16
    s[17] = a17
    s[18] = a18
    s[19] = a19
    s[20] = a20
    s[21] = a21
    s[22] = a22
    s[23] = a23
    s[24] = a24


@njit(nogil=True, cache=True)
def _absorb_and_squeeze(s, words, base, count):  # pragma: no cover - compiled
    """keccak256 of the ``count`` lanes at ``words[base:]``, left in ``s[0:4]``."""
    s[:] = 0
    pos = 0
    while count - pos >= RATE_WORDS:
        for j in range(RATE_WORDS):
            s[j] ^= words[base + pos + j]
        _permute(s)
        pos += RATE_WORDS
    rest = count - pos
    for j in range(rest):
        s[j] ^= words[base + pos + j]
    s[rest] ^= _PAD_FIRST
    s[RATE_WORDS - 1] ^= _PAD_LAST
    _permute(s)


@njit(nogil=True, cache=True)
def hash_chunks(words, chunk_words, first, stop, out):  # pragma: no cover - compiled
    """``out[i] = keccak256(words[i * chunk_words : (i + 1) * chunk_words])`` for ``first <= i < stop``."""
    s = np.empty(25, np.uint64)
    for i in range(first, stop):
        _absorb_and_squeeze(s, words, i * chunk_words, chunk_words)
        for j in range(4):
            out[i, j] = s[j]


@njit(nogil=True, cache=True)
def hash_pairs(nodes, count, out):  # pragma: no cover - compiled
    """``out[i] = keccak256(nodes[2i] ‖ nodes[2i + 1])`` for ``i < count // 2``."""
    s = np.empty(25, np.uint64)
    for i in range(count // 2):
        s[:] = 0
        for j in range(4):
            s[j] = nodes[2 * i, j]
            s[4 + j] = nodes[2 * i + 1, j]
        s[8] = _PAD_FIRST
        s[RATE_WORDS - 1] = _PAD_LAST
        _permute(s)
        for j in range(4):
            out[i, j] = s[j]


@njit(nogil=True, cache=True)
def merkle_root(nodes, count, zero_subtrees):  # pragma: no cover - compiled
    """Reduce the ``count >= 1`` leaf hashes in ``nodes`` (room for ``count + 1`` rows) to the root
    in ``nodes[0]``, in place; a missing right child at height h is ``zero_subtrees[h]``."""
    height = 0
    while count > 1:
        if count & 1:
            for j in range(4):
                nodes[count, j] = zero_subtrees[height, j]
            count += 1
        hash_pairs(nodes, count, nodes)
        count //= 2
        height += 1
