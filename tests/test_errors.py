"""errors.py: the one "did you mean" hint every unknown-key message uses."""

from detector.errors import suggestion


def test_nearest_name_or_the_list():
    assert suggestion("train.epoch", ["train.epochs", "train.lr"]) == "did you mean 'train.epochs'?"
    assert suggestion("zzz", ["a", "b"]) == "valid keys: a, b"
    assert suggestion("zzz", ["a", "b"], what="valid") == "valid: a, b"
    assert suggestion("zzz", ["a", "b"], what=None) == ""
