"""Quorum's random streams in Python, for the fixture generators that draw Quorum's own
dropout and stochastic-depth masks: Philox4x32-10 (Sources/Tensor/Philox.swift), checked
against the Random123 known answers, and RandomStream.uniform."""

DROPOUT_PURPOSE, DEPTH_PURPOSE = 3, 4  # Quorum's RandomPurpose
MASK32 = 0xFFFFFFFF


def philox(counter, key):
    """Philox4x32-10, as Quorum's Philox.block."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_ in range(10):
        if round_ > 0:
            k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK32, p1 & MASK32, ((p0 >> 32) ^ c3 ^ k1) & MASK32, p0 & MASK32
    return c0, c1, c2, c3


assert philox((0, 0, 0, 0), (0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
assert philox((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0)) == \
    (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)


def uniform(seed, purpose, stream, index):
    """Quorum's RandomStream(seed, purpose, stream).uniform(at: index)."""
    word = philox((index & MASK32, index >> 32, stream & MASK32, purpose), (seed & MASK32, seed >> 32))[0]
    return (word >> 8) / 16777216.0
