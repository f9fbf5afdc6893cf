"""Path validation (PathUtils.validatePath): the quick checks of
is_valid_path against the rules written out one by one."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from zkpy.datatree.paths import is_valid_path

_BAD = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff\U00010000-\U0010ffff]")


def rules(path) -> bool:
    """ZooKeeper's rules, one at a time: absolute, no trailing or double
    slash, no "." or ".." name, none of the refused characters."""
    if not path or path[0] != "/":
        return False
    if path == "/":
        return True
    if path.endswith("/"):
        return False
    if _BAD.search(path):
        return False
    return all(part not in ("", ".", "..") for part in path[1:].split("/"))


CASES = ["/", "/a", "/a/b", "a", "", "//", "/a/", "/a//b", "/.", "/..", "/a/.", "/a/..",
         "/./a", "/../a", "/.a", "/a.", "/a/.b/..c", "/...", "/a/...", "/ a", "/a b",
         "/a\x00", "/a\x1f", "/a\x7f", "/a\x80", "/a\x9f", "/a\xa0", "/é", "/a/ü/b",
         "/\ud800", "/\uf8ff", "/\uf900", "/\ufff0", "/\uffef", "/\U0001f600", "/a\tb",
         "/zookeeper", "/zookeeper/quota", "/a/b/c/d/e"]


def test_cases():
    for path in CASES:
        assert is_valid_path(path) == rules(path), repr(path)


_CHARS = st.sampled_from("/.a\x00\x1f\x7f\x80\xa0é\ud800\uf8ff\ufff0\U0001f600 ")


@settings(max_examples=3000, deadline=None)
@given(st.text(_CHARS, max_size=12) | st.text(max_size=12).map(lambda t: "/" + t))
def test_same_as_the_rules(path):
    assert is_valid_path(path) == rules(path)
