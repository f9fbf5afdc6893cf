"""CRC-32 with zlib's polynomial: the digest of the tree (DigestCalculator's
CRC32) and the checksums of log records and snapshots.

ISA-L's (the isal package), where it is installed, gives the same values as
zlib's in about a quarter of the time on the short buffers these are -- a
path, a Stat, a znode's data, one txn -- which is about half a microsecond of
every write: the digest takes four to six CRCs per change, the log one.
zlib's is the fallback, on a platform without an isal wheel."""

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal is a dependency where it has wheels
    from zlib import crc32

__all__ = ["crc32"]
